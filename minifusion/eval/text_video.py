"""A small contrastive text-video model: the toy stand-in for CLIP in the CLIPSIM metric.

FusionFrames (arXiv 2311.13073, section 5) reports CLIPSIM on MSR-VTT: the mean CLIP cosine
similarity between generated frames and their prompt (Wu et al. 2021, GODIVA). CLIP (Radford et
al. 2021) cannot be downloaded here, so this project trains a small one on Moving Shapes
clips and captions with CLIP's symmetric InfoNCE loss (``contrastive_loss``):

    video (B, 3, F, 64, 64) -> prepare_video -> VideoEncoder -> Linear -> L2 norm  -> v (B, D)
    caption -> Tokenizer (the Moving Shapes vocabulary) -> word + position embeddings
            -> pre-norm transformer layers (padding masked) -> LayerNorm -> mean over words
            -> Linear -> L2 norm                                                    -> t (B, D)

``similarity(videos, prompts)`` is the cosine v_i . t_i of each video with its own prompt; its
mean over generated videos is the CLIPSIM analogue (a cosine in [-1, 1], not CLIP's x100). Unlike
the attribute classifier it sees the whole caption, so it also scores two-shape captions and the
words the classifier has no head for. Videos go in as for every learned metric (``prepare_video``).

Taught in notebook 12 (notebooks/12_evaluation.ipynb).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from minifusion.eval.video_encoder import FRAME_SIZE, NUM_FRAMES, VideoEncoder, prepare_video
from minifusion.models.modeling_utils import ModelMixin
from minifusion.models.tokenizer import Tokenizer, check_prompts, moving_shapes_vocabulary


@dataclass
class TextVideoModelConfig:
    vocab: tuple[str, ...] = field(default_factory=moving_shapes_vocabulary)  # tokens by id: <pad>, <unk>, words
    max_length: int = 16  # words per caption (longer ones raise)
    embed_dim: int = 64  # D, the shared embedding space
    text_width: int = 64  # width of the text transformer
    text_layers: int = 2  # transformer layers
    text_heads: int = 4  # attention heads (divide text_width)
    block_out_channels: tuple[int, ...] = (24, 32, 48, 64, 64)  # VideoEncoder: the shape window CNN's 5 convs
    context_channels: tuple[int, ...] = (16, 32, 32)  # VideoEncoder: the whole-frame CNN's 3 convs
    stream_dims: tuple[int, ...] = (16, 32, 32, 16)  # VideoEncoder: colour, shape, motion, context widths
    num_frames: int = NUM_FRAMES  # frames seen per video
    sample_size: int = FRAME_SIZE  # frame height and width
    window: int = 32  # side of the window around the shape
    init_temperature: float = 0.07  # CLIP's initial softmax temperature (logit scale 1 / 0.07)


class TextVideoModel(ModelMixin):
    """Video and text towers into one embedding space; see the module docstring."""

    config_class = TextVideoModelConfig

    def __init__(self, config: TextVideoModelConfig | dict | None = None) -> None:
        super().__init__(config)
        c = self.config
        if c.text_width % c.text_heads:
            raise ValueError(f"text_heads {c.text_heads} does not divide text_width {c.text_width}")
        self.tokenizer = Tokenizer(c.vocab, max_length=c.max_length)
        self.video_encoder = VideoEncoder(block_out_channels=c.block_out_channels,
                                          context_channels=c.context_channels, stream_dims=c.stream_dims,
                                          num_frames=c.num_frames, sample_size=c.sample_size, window=c.window)
        self.video_proj = nn.Linear(self.video_encoder.out_dim, c.embed_dim)
        self.token_embedding = nn.Embedding(len(c.vocab), c.text_width)
        self.position_embedding = nn.Parameter(0.02 * torch.randn(c.max_length, c.text_width))
        layer = nn.TransformerEncoderLayer(c.text_width, c.text_heads, dim_feedforward=2 * c.text_width,
                                           dropout=0.0, activation="gelu", batch_first=True, norm_first=True)
        self.text_layers = nn.TransformerEncoder(layer, c.text_layers, enable_nested_tensor=False)
        self.text_norm = nn.LayerNorm(c.text_width)
        self.text_proj = nn.Linear(c.text_width, c.embed_dim)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / c.init_temperature)))

    # -- towers ----------------------------------------------------------------------------------
    def embed_video(self, video: torch.Tensor) -> torch.Tensor:
        """Prepared videos (B, 3, num_frames, size, size) in [-1, 1] -> unit embeddings (B, D)."""
        return F.normalize(self.video_proj(self.video_encoder(video)), dim=-1)

    def embed_tokens(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Token ids and mask (B, L) -> unit embeddings (B, D): the mean over the caption's words."""
        if not attention_mask.any(dim=1).all():
            raise ValueError("every caption needs at least one word (got an empty prompt)")
        x = self.token_embedding(input_ids) + self.position_embedding[: input_ids.shape[1]]  # (B, L, W)
        x = self.text_norm(self.text_layers(x, src_key_padding_mask=~attention_mask))
        m = attention_mask[..., None].to(x.dtype)  # (B, L, 1)
        pooled = (x * m).sum(dim=1) / m.sum(dim=1)  # (B, W)
        return F.normalize(self.text_proj(pooled), dim=-1)

    def forward(self, video: torch.Tensor, input_ids: torch.Tensor,
                attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(video embeddings (B, D), text embeddings (B, D)), both unit length."""
        return self.embed_video(video), self.embed_tokens(input_ids, attention_mask)

    # -- inference helpers (eval mode, no gradients, any batch size) -----------------------------
    @torch.no_grad()
    def encode_videos(self, video: torch.Tensor, *, value_range: tuple[float, float] = (-1.0, 1.0),
                      batch_size: int = 64) -> torch.Tensor:
        """Unit embeddings (B, D) of any videos ``prepare_video`` accepts."""
        param = next(self.parameters())
        x = prepare_video(video, value_range=value_range, num_frames=self.config.num_frames,
                          size=self.config.sample_size).to(param.device, param.dtype)
        with _eval_mode(self):
            return torch.cat([self.embed_video(x[i:i + batch_size]) for i in range(0, len(x), batch_size)]).cpu()

    @torch.no_grad()
    def encode_text(self, prompts: str | list[str]) -> torch.Tensor:
        """Unit embeddings (B, D) of prompts (unknown words become <unk>, with a warning)."""
        prompts = check_prompts(prompts)
        ids, mask = self.tokenizer(prompts, stacklevel=3)
        device = next(self.parameters()).device
        with _eval_mode(self):
            return self.embed_tokens(ids.to(device), mask.to(device)).float().cpu()

    def similarity(self, video: torch.Tensor, prompts: str | list[str], *,
                   value_range: tuple[float, float] = (-1.0, 1.0)) -> torch.Tensor:
        """(B,) cosine similarity of each video with its own prompt (the CLIPSIM analogue per video)."""
        prompts = check_prompts(prompts)
        v = self.encode_videos(video, value_range=value_range)
        if len(prompts) != len(v):
            raise ValueError(f"need one prompt per video: {len(v)} videos, {len(prompts)} prompts")
        return (v * self.encode_text(prompts)).sum(dim=-1)

    def example_inputs(self) -> tuple[tuple, dict, int]:
        c = self.config
        ids, mask = self.tokenizer(["a red circle moves right"])
        return (torch.zeros(1, 3, c.num_frames, c.sample_size, c.sample_size), ids, mask), {}, c.num_frames


class _eval_mode:
    """Context manager: the model in eval mode inside, its previous mode restored after."""

    def __init__(self, model: nn.Module) -> None:
        self.model, self.was_training = model, model.training

    def __enter__(self) -> None:
        self.model.eval()

    def __exit__(self, *exc) -> None:
        self.model.train(self.was_training)


def contrastive_loss(video_embeddings: torch.Tensor, text_embeddings: torch.Tensor, logit_scale: torch.Tensor,
                     captions: list[str] | None = None) -> torch.Tensor:
    """CLIP's symmetric InfoNCE loss (Radford et al. 2021): cross-entropy of video -> text and text -> video.

    Moving Shapes batches repeat captions, so the target of a row is spread evenly over every item
    with the same caption (given ``captions``), instead of calling identical captions negatives.
    """
    logits = logit_scale.exp().clamp(max=100.0) * video_embeddings @ text_embeddings.T  # (B, B)
    if captions is None:
        target = torch.eye(len(logits), device=logits.device)
    else:
        ids = {c: i for i, c in enumerate(dict.fromkeys(captions))}
        key = torch.tensor([ids[c] for c in captions], device=logits.device)
        target = (key[:, None] == key[None, :]).float()
    target = target / target.sum(dim=1, keepdim=True)  # symmetric: equal captions form equal-sized groups
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


__all__ = ["TextVideoModel", "TextVideoModelConfig", "contrastive_loss"]
