"""Inception score from class probabilities: the toy IS.

IS (Salimans et al. 2016) = exp(E_x[KL(p(y|x) || p(y))]), with p(y) the mean of p(y|x) over the
set: high when each video is classified confidently (low-entropy p(y|x)) and the set covers many
classes (high-entropy p(y)). It lies in [1, number of classes]. FusionFrames (arXiv 2311.13073,
Table 1) reports it on UCF-101 with a video classifier; here the classifier is the
``AttributeClassifier`` and the score is computed **per attribute head**:
the colour head's IS of videos prompted with all 7 colours at most 7, the direction head's of
4 prompted directions at most 4. Compare it with the same score of real clips of the same prompts
(the ceiling for that prompt set). Computed on the whole set (no splits, unlike the original's 10).

Taught in notebook 12 (notebooks/12_evaluation.ipynb).
"""

from __future__ import annotations

import math

import torch


def inception_score(probabilities: torch.Tensor, *, eps: float = 1e-12) -> float:
    """exp(mean_x KL(p(y|x) || p(y))) of class probabilities (N, K) whose rows sum to 1."""
    if not torch.is_tensor(probabilities) or probabilities.ndim != 2 or probabilities.shape[0] < 1:
        raise ValueError(f"probabilities must be a (N, K) tensor with N >= 1, got "
                         f"{getattr(probabilities, 'shape', type(probabilities))}")
    p = probabilities.detach().double().cpu()
    if (p < 0).any() or not torch.allclose(p.sum(dim=1), torch.ones(len(p), dtype=p.dtype), atol=1e-4):
        raise ValueError("probabilities must be non-negative with rows summing to 1 (apply softmax to logits)")
    marginal = p.mean(dim=0, keepdim=True)  # p(y)
    kl = (p * ((p + eps).log() - (marginal + eps).log())).sum(dim=1)  # (N,)
    return math.exp(float(kl.mean()))


__all__ = ["inception_score"]
