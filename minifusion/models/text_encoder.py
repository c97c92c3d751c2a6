"""A small transformer text encoder with a learned null embedding for classifier-free guidance.

FusionFrames (arXiv 2311.13073, section 3) conditions its U-Nets on the token embeddings and
mask of the frozen Flan-UL2 encoder, and uses a learned "null" embedding as the unconditional
input of classifier-free guidance (Ho and Salimans 2022). The toy version is a from-scratch
encoder of about 1M parameters over a word vocabulary (``Tokenizer``):

    tokens + learned positions -> N pre-norm blocks (x + SelfAttn(LN(x)); x + MLP(LN(x))) -> LN

Self-attention uses ``F.scaled_dot_product_attention`` with a key padding mask, so padding never
changes the real tokens' outputs; outputs at padded positions are set to 0.

Null embedding: a prompt with no words (the empty prompt "") is encoded as the learned null
token at position 0 (mask True there, False elsewhere). ``encode("")``, ``null_embedding(B)``
and a mask row of all False in ``forward`` all give it, so dropping captions to "" at training
time trains the null embedding for guidance.

Pluggable interface (what the U-Nets and the pipeline use): ``encode(prompts) ->
(hidden_states (B, L, D), mask (B, L) bool)``, ``null_embedding(batch_size)``,
``config.hidden_size`` (= the U-Nets' ``cross_attention_dim``) and ``config.max_length`` (= L).

Taught in notebooks 05 and 06 (notebooks/05_unet_blocks.ipynb, notebooks/06_text_to_image.ipynb).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from minifusion.checks import check_number, positive_int
from minifusion.models.modeling_utils import ModelMixin
from minifusion.models.tokenizer import PAD_ID, Tokenizer, check_prompts, moving_shapes_vocabulary
from minifusion.nn.attention import Attention


@dataclass
class TextEncoderConfig:
    vocab: tuple[str, ...] = field(default_factory=moving_shapes_vocabulary)  # tokens by id: <pad>, <unk>, words
    max_length: int = 16  # tokens per prompt (padded length L); longer prompts raise
    hidden_size: int = 128  # width D of the token embeddings (the U-Nets' cross_attention_dim)
    num_hidden_layers: int = 5  # transformer blocks
    num_attention_heads: int = 4  # heads per self-attention (divides hidden_size)
    intermediate_size: int = 512  # hidden width of each block's MLP
    dropout: float = 0.0  # dropout on attention output and MLP (training only)


class TextEncoderBlock(nn.Module):
    """Pre-norm transformer block: x + SelfAttn(LN(x), mask); x + MLP(LN(x)). (B, L, D) -> (B, L, D)."""

    def __init__(self, hidden_size: int, *, num_heads: int, intermediate_size: int, dropout: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(hidden_size)
        self.attn = Attention(hidden_size, heads=num_heads, dim_head=hidden_size // num_heads)
        self.norm2 = nn.LayerNorm(hidden_size)
        self.mlp = nn.Sequential(
            nn.Linear(hidden_size, intermediate_size), nn.GELU(), nn.Linear(intermediate_size, hidden_size)
        )
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = x + self.dropout(self.attn(self.norm1(x), attention_mask=mask))
        return x + self.dropout(self.mlp(self.norm2(x)))


class TextEncoder(ModelMixin):
    """Prompts -> token embeddings (B, L, D) and a mask (B, L) (True = a real token or the null token)."""

    config_class = TextEncoderConfig

    def __init__(self, config: TextEncoderConfig | dict | None = None) -> None:
        super().__init__(config)
        c = self.config
        self.tokenizer = Tokenizer(c.vocab, max_length=c.max_length)  # validates vocab and max_length
        for name in ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size"):
            positive_int(name, getattr(c, name))
        if c.hidden_size % c.num_attention_heads:
            raise ValueError(f"num_attention_heads {c.num_attention_heads} does not divide hidden_size {c.hidden_size}")
        check_number("dropout", c.dropout, minimum=0, maximum=1, exclusive_maximum=True)
        d = c.hidden_size
        self.token_embedding = nn.Embedding(len(c.vocab), d)
        self.position_embedding = nn.Parameter(torch.zeros(c.max_length, d))
        self.blocks = nn.ModuleList(
            TextEncoderBlock(d, num_heads=c.num_attention_heads, intermediate_size=c.intermediate_size,
                             dropout=c.dropout)
            for _ in range(c.num_hidden_layers)
        )
        self.final_norm = nn.LayerNorm(d)
        # Unit scale, like the final LayerNorm's outputs it stands in for.
        self.null_token = nn.Parameter(torch.randn(d))
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.position_embedding, std=0.02)

    @classmethod
    def from_captions(cls, captions: list[str], **config_kwargs) -> TextEncoder:
        """A fresh encoder whose vocabulary holds every word of ``captions``."""
        max_length = config_kwargs.pop("max_length", TextEncoderConfig.max_length)
        tokenizer = Tokenizer.from_captions(captions, max_length=max_length)
        return cls(TextEncoderConfig(vocab=tokenizer.vocab, max_length=max_length, **config_kwargs))

    def _check_inputs(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        L, V = self.config.max_length, len(self.config.vocab)
        if not torch.is_tensor(input_ids) or input_ids.ndim != 2 or input_ids.shape[1] > L:
            shape = tuple(input_ids.shape) if torch.is_tensor(input_ids) else type(input_ids).__name__
            raise ValueError(f"input_ids must be (B, L) with L <= max_length {L}, got shape {shape}")
        if input_ids.dtype.is_floating_point or input_ids.dtype == torch.bool:
            raise ValueError(f"input_ids must be integer token ids, got dtype {input_ids.dtype}")
        if input_ids.numel() and (input_ids.min() < 0 or input_ids.max() >= V):
            raise ValueError(f"input_ids must lie in [0, {V - 1}], got values in "
                             f"[{int(input_ids.min())}, {int(input_ids.max())}]")
        if not torch.is_tensor(attention_mask) or attention_mask.shape != input_ids.shape:
            shape = tuple(attention_mask.shape) if torch.is_tensor(attention_mask) else type(attention_mask).__name__
            raise ValueError(f"attention_mask must have the shape of input_ids {tuple(input_ids.shape)}, got {shape}")
        if attention_mask.dtype != torch.bool:
            if not bool(((attention_mask == 0) | (attention_mask == 1)).all()):
                raise ValueError("attention_mask must be bool or hold only 0 and 1 (1 = real token)")
            attention_mask = attention_mask != 0
        return attention_mask

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """input_ids (B, L) int, attention_mask (B, L) bool -> hidden_states (B, L, D), mask (B, L) bool.

        Rows whose mask is all False (empty prompts) get the null embedding; the returned mask
        marks its position 0 valid. Hidden states at masked positions are 0.
        """
        mask = self._check_inputs(input_ids, attention_mask).to(input_ids.device)
        b, length = input_ids.shape
        empty = ~mask.any(dim=1)  # (B,)
        # Attention needs one key per row: let empty rows attend to position 0 (replaced below).
        attn_mask = mask.clone()
        attn_mask[empty, 0] = True
        h = self.token_embedding(input_ids) + self.position_embedding[:length]  # (B, L, D)
        for block in self.blocks:
            h = block(h, attn_mask)
        h = self.final_norm(h)
        null_hidden, null_mask = self.null_embedding(b, length=length)
        h = torch.where(empty[:, None, None], null_hidden, h * mask[..., None].to(h.dtype))
        return h, torch.where(empty[:, None], null_mask, mask)

    def null_embedding(self, batch_size: int, *, length: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The unconditional input: (B, L, D) with the null token at position 0, mask (B, L) True there."""
        positive_int("batch_size", batch_size)
        length = self.config.max_length if length is None else length
        hidden = F.pad(self.null_token[None, None, :], (0, 0, 0, length - 1))  # (1, L, D)
        mask = torch.zeros(1, length, dtype=torch.bool, device=hidden.device)
        mask[:, 0] = True
        return hidden.expand(batch_size, -1, -1), mask.expand(batch_size, -1)

    def encode(self, prompts: str | list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Prompts -> (hidden_states (B, max_length, D), mask (B, max_length) bool); "" -> null embedding.

        Unknown words become ``<unk>`` with a UserWarning; a prompt longer than ``max_length``
        words raises ValueError. Runs on the device of the encoder's parameters.
        """
        prompts = check_prompts(prompts)
        input_ids, mask = self.tokenizer(prompts, stacklevel=3)
        device = self.token_embedding.weight.device
        return self(input_ids.to(device), mask.to(device))

    def example_inputs(self) -> tuple[tuple, dict, int]:
        device = self.token_embedding.weight.device
        ids = torch.full((1, self.config.max_length), PAD_ID, dtype=torch.long, device=device)
        ids[0, :6] = torch.arange(2, 8, device=device) % len(self.config.vocab)
        mask = ids != PAD_ID
        return (ids, mask), {}, 1
