"""The interpolation objective: v-prediction of the frames between each keyframe pair (FusionFrames, section 3.2).

A window of K keyframes and the n = 3 frames between each pair, as latents (B, C, (n + 1)(K - 1) + 1, h, w),
is split into keyframes (B, C, K, h, w) and middle frames (B, n C, K - 1, h, w) (``split_clip_latents``);
the middle frames are noised to t, the keyframes to a small t_p ("conditional frame perturbation"),
and the model sees one latent per pair, [left | 3 noisy | right] along the channels
(``build_interpolation_input``); loss = ||v_theta - v||^2 on the middle frames, with
v = sqrt(ab_t) eps - sqrt(1 - ab_t) x0 (Salimans and Ho 2022). 10% of the samples have their
keyframes zeroed, the "uncond" of context guidance.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange

from minifusion.models.interpolation_unet import InterpolationUNet
from minifusion.pipelines.interpolation import pair_conditioning
from minifusion.training.randomness import per_sample_bernoulli, per_sample_noise, per_sample_randint


def split_clip_latents(clip: torch.Tensor, frames_per_pair: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Window latents (B, C, (n + 1)(K - 1) + 1, h, w) -> keyframes (B, C, K, h, w), middles (B, n C, K - 1, h, w).

    The inverse of ``minifusion.pipelines.interpolation.interleave``: channels ``(n c)``, frame 1 first.
    """
    m = frames_per_pair + 1
    if clip.ndim != 5 or (clip.shape[2] - 1) % m or clip.shape[2] < m + 1:
        raise ValueError(f"window latents must be (B, C, {m} (K - 1) + 1, h, w) with K >= 2, got shape "
                         f"{tuple(clip.shape)}")
    body = rearrange(clip[:, :, :-1], "b c (p m) h w -> b c p m h w", m=m)  # (B, C, P, n + 1, h, w)
    middle = rearrange(body[:, :, :, 1:], "b c p n h w -> b (n c) p h w")  # (B, n C, P, h, w)
    return clip[:, :, ::m], middle


def build_interpolation_input(keyframes: torch.Tensor, noisy_middle: torch.Tensor) -> torch.Tensor:
    """Keyframes (B, C, K, h, w) + noisy middles (B, n C, K - 1, h, w) -> (B, (n + 2) C, K - 1, h, w).

    Per pair [left keyframe | noisy middles | right keyframe], as ``interpolate_pass`` builds it.
    """
    left, right = pair_conditioning(keyframes)  # (B, C, P, h, w) each
    return torch.cat([left, noisy_middle, right], dim=1)


def draw_sample_randomness(generators: list[torch.Generator], *, clip_shape: tuple[int, ...], num_keyframes: int,
                           fine_fraction: float, num_train_timesteps: int, max_perturbation: int,
                           keyframe_dropout: float, device: torch.device) -> dict:
    """Per sample, in this order: pass-2 choice, t, t_p, keyframe dropout, clip noise, keyframe noise."""
    c, _, h, w = clip_shape
    return {"fine": per_sample_bernoulli(generators, fine_fraction, device=device),  # (B,) bool
            "t": per_sample_randint(generators, 0, num_train_timesteps, device=device),  # (B,)
            "t_p": per_sample_randint(generators, 0, max_perturbation + 1, device=device),  # (B,)
            "drop": per_sample_bernoulli(generators, keyframe_dropout, device=device),  # (B,) bool
            "noise": per_sample_noise(generators, clip_shape, device=device),  # (B, C, F, h, w)
            "keyframe_noise": per_sample_noise(generators, (c, num_keyframes, h, w), device=device)}  # (B, C, K, h, w)


class InterpolationTask:
    """v-prediction loss of the interpolator on pairs of (perturbed, sometimes dropped) keyframes.

    Args:
        scheduler: the training scheduler (cosine, ``prediction_type="v_prediction"``).
        frame_skip: the pass-1 skip (4); pass 2 uses ``frame_skip / (frames_per_pair + 1)`` (1).
    """

    def __init__(self, scheduler, *, frame_skip: float = 4.0, frames_per_pair: int = 3, fine_fraction: float = 0.5,
                 max_perturbation: int = 250, keyframe_dropout: float = 0.1) -> None:
        self.scheduler, self.frames_per_pair = scheduler, int(frames_per_pair)
        self.coarse_skip = float(frame_skip)
        self.fine_skip = self.coarse_skip / (self.frames_per_pair + 1)
        self.fine_fraction, self.max_perturbation = float(fine_fraction), int(max_perturbation)
        self.keyframe_dropout = float(keyframe_dropout)

    def prepare(self, batch: dict, generators: list[torch.Generator]) -> dict:
        """The sample's window latents, its randomness, frame skips and perturbed/dropped keyframes."""
        coarse = batch["coarse"]  # (B, C, F, h, w)
        m = self.frames_per_pair + 1
        k = (coarse.shape[2] - 1) // m + 1
        r = draw_sample_randomness(generators, clip_shape=tuple(coarse.shape[1:]), num_keyframes=k,
                                   fine_fraction=self.fine_fraction if "fine" in batch else 0.0,
                                   num_train_timesteps=self.scheduler.num_train_timesteps,
                                   max_perturbation=self.max_perturbation, keyframe_dropout=self.keyframe_dropout,
                                   device=coarse.device)
        clip = torch.where(r["fine"][:, None, None, None, None], batch["fine"], coarse) if "fine" in batch else coarse
        r["clip"] = clip.to(r["noise"].dtype)
        r["frame_skip"] = torch.where(r["fine"], self.fine_skip, self.coarse_skip).float()  # (B,)
        keyframes = self.scheduler.add_noise(r["clip"][:, :, ::m], r["keyframe_noise"], r["t_p"])  # (B, C, K, h, w)
        r["keyframes"] = keyframes * (~r["drop"]).to(keyframes.dtype)[:, None, None, None, None]
        return r

    def loss(self, model: InterpolationUNet, batch: dict, sample_indices: list[int],
             generators: list[torch.Generator]) -> torch.Tensor:
        r = self.prepare(batch, generators)
        _, middle = split_clip_latents(r["clip"], self.frames_per_pair)  # (B, 12, P, h, w)
        _, noise = split_clip_latents(r["noise"], self.frames_per_pair)
        x_t = self.scheduler.add_noise(middle, noise, r["t"])
        target = self.scheduler.training_target(middle, noise, r["t"])
        prediction = model(build_interpolation_input(r["keyframes"], x_t), r["t"], frame_skip=r["frame_skip"],
                           perturbation_level=r["t_p"])
        return F.mse_loss(prediction.float(), target.float())
