"""The text-to-image objective: the diffusion loss of the U-Net on single frame latents.

x_t = sqrt(ab_t) x0 + sqrt(1 - ab_t) eps, t ~ U{0..T-1}, eps ~ N(0, I) (Ho et al. 2020, eq. 14);
loss = ||model(x_t, t, text) - target||^2 with the scheduler's target (epsilon, v or x0); the
caption is dropped (the text encoder's null embedding) for 10% of the samples so one model gives
both terms of classifier-free guidance (Ho and Salimans 2022).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from minifusion.models.text_encoder import TextEncoder
from minifusion.training.randomness import per_sample_bernoulli, per_sample_noise, per_sample_randint


class T2ITask:
    """Epsilon/v/x0 diffusion loss of the U-Net on text from the frozen text encoder.

    Per sample, in this order: timestep, noise, caption-dropout decision. A dropped caption's
    mask row is cleared, which the text encoder answers with its null embedding.
    """

    def __init__(self, scheduler, text_encoder: TextEncoder, *, caption_dropout: float = 0.1) -> None:
        self.scheduler, self.caption_dropout = scheduler, float(caption_dropout)
        self.text_encoder = text_encoder.eval().requires_grad_(False)

    def draw(self, batch: dict, generators: list[torch.Generator]) -> dict:
        """x_t, t, the target and the text of a batch ``{"latents", "input_ids", "attention_mask"}``.

        Per sample, in this order: t ~ U{0..T-1}, eps ~ N(0, I) of the latents' shape, the caption-dropout
        decision; x_t = sqrt(ab_t) x0 + sqrt(1 - ab_t) eps.
        """
        x0 = batch["latents"]  # (B, C, h, w), or (B, C, K, h, w) keyframes
        device = x0.device
        t = per_sample_randint(generators, 0, self.scheduler.num_train_timesteps, device=device)  # (B,)
        noise = per_sample_noise(generators, x0.shape[1:], device=device, dtype=x0.dtype)  # like x0
        drop = per_sample_bernoulli(generators, self.caption_dropout, device=device)  # (B,) bool
        mask = batch["attention_mask"] & ~drop[:, None]  # (B, L); empty rows -> null embedding
        with torch.no_grad():
            hidden, hidden_mask = self.text_encoder(batch["input_ids"], mask)  # (B, L, D), (B, L)
        return {"x_t": self.scheduler.add_noise(x0, noise, t), "t": t,
                "target": self.scheduler.training_target(x0, noise, t), "hidden": hidden, "hidden_mask": hidden_mask}

    def loss(self, model, batch: dict, sample_indices: list[int], generators: list[torch.Generator]) -> torch.Tensor:
        d = self.draw(batch, generators)
        prediction = model(d["x_t"], d["t"], d["hidden"], d["hidden_mask"])
        return F.mse_loss(prediction.float(), d["target"].float())
