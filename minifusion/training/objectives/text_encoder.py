"""The text encoder's objective: read corrupted captions back (a small stand-in for UL2's denoising).

Per caption, a share of its real tokens is corrupted (BERT's 80 / 10 / 10: ``<unk>``, a random
word, unchanged); the encoder plus a linear head predicts the original token at every real
position: loss = mean over captions of the mean cross-entropy over its tokens. The encoder learns
from text alone, as FusionFrames' frozen Flan-UL2 did (arXiv 2311.13073, section 3).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from minifusion.models.tokenizer import UNK_ID

FIRST_WORD_ID = UNK_ID + 1  # ids below are <pad> and <unk>


def corrupt_tokens(input_ids: torch.Tensor, mask: torch.Tensor, generators: list[torch.Generator], *,
                   min_rate: float, max_rate: float, vocab_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT-style corruption of each row's real tokens; returns (corrupted ids (B, L), chosen (B, L) bool).

    Per row, from its generator: a rate in [min_rate, max_rate], then that share of its n real
    tokens (at least 1) at random positions; each chosen token -> ``<unk>`` (80%), a random word
    (10%) or itself (10%).
    """
    out, chosen = input_ids.clone(), torch.zeros_like(mask)
    for b, g in enumerate(generators):
        n = int(mask[b].sum())
        rate = min_rate + (max_rate - min_rate) * float(torch.rand(1, generator=g))
        k = max(1, round(rate * n)) if n else 0
        positions = torch.randperm(n, generator=g)[:k]  # real tokens are the first n (padding follows)
        what = torch.rand(k, generator=g)
        words = torch.randint(FIRST_WORD_ID, vocab_size, (k,), generator=g)
        chosen[b, positions] = True
        new = torch.where(what < 0.8, torch.full_like(words, UNK_ID), torch.where(what < 0.9, words, out[b, positions]))
        out[b, positions] = new
    return out, chosen


class TextDenoisingTask:
    """Cross-entropy of the original token at every real position of a corrupted caption."""

    def __init__(self, *, min_corruption: float, max_corruption: float, vocab_size: int) -> None:
        self.min_rate, self.max_rate, self.vocab_size = float(min_corruption), float(max_corruption), vocab_size

    def loss(self, model, batch: dict, sample_indices: list[int], generators: list[torch.Generator]) -> torch.Tensor:
        ids, mask = batch["input_ids"], batch["attention_mask"]  # (B, L), (B, L)
        corrupted, _ = corrupt_tokens(ids.cpu(), mask.cpu(), generators, min_rate=self.min_rate,
                                      max_rate=self.max_rate, vocab_size=self.vocab_size)
        hidden, _ = model["text_encoder"](corrupted.to(ids.device), mask)  # (B, L, D)
        logits = model["head"](hidden)  # (B, L, V)
        per_token = F.cross_entropy(logits.flatten(0, 1).float(), ids.flatten(), reduction="none").view_as(ids)
        per_caption = (per_token * mask).sum(1) / mask.sum(1).clamp(min=1)  # (B,)
        return per_caption.mean()
