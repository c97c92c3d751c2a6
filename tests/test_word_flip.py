"""The word-flip probe: flipping direction words, the clean prediction per prediction type, and a model
that ignores its text scores exactly 1.0."""

from __future__ import annotations

import pytest
import torch

from minifusion.diffusion import DDPMScheduler
from minifusion.eval.word_flip import flip_direction, predicted_x0, word_flip_effect
from minifusion.models import KeyframeUNet, KeyframeUNetConfig, TextEncoder

CAPTIONS = ["a red circle moves right", "a blue square moves up-left"]


def test_flip_direction_swaps_every_direction_word_for_its_opposite():
    assert flip_direction("a red circle moves right") == "a red circle moves left"
    assert flip_direction("a blue square moves up-left") == "a blue square moves down-right"
    assert flip_direction("a star moves down-left and a circle moves up") == \
        "a star moves up-right and a circle moves down"
    assert flip_direction(flip_direction("a red circle moves down-right")) == "a red circle moves down-right"
    with pytest.raises(ValueError, match="no direction word"):
        flip_direction("a red circle rotates")
    with pytest.raises(ValueError, match="must be a string"):
        flip_direction(3)


@pytest.mark.parametrize("kind", ["epsilon", "v_prediction", "sample"])
def test_predicted_x0_recovers_the_clean_sample_from_the_exact_target(kind):
    scheduler = DDPMScheduler(beta_schedule="squaredcos_cap_v2", prediction_type=kind)
    x0, noise = torch.randn(3, 4, 2, 5, 5), torch.randn(3, 4, 2, 5, 5)
    t = torch.tensor([10, 500, 990])
    x_t = scheduler.add_noise(x0, noise, t)
    target = scheduler.training_target(x0, noise, t)
    torch.testing.assert_close(predicted_x0(scheduler, x_t, t, target), x0, rtol=1e-4, atol=1e-3)


def tiny_model_and_text():
    torch.manual_seed(0)
    text_encoder = TextEncoder.from_captions(CAPTIONS + ["a red circle moves left", "moves down-right"],
                                             hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                             intermediate_size=32, max_length=8)
    model = KeyframeUNet(KeyframeUNetConfig(block_out_channels=(8, 16), layers_per_block=1, cross_attention_dim=16,
                                            attention_head_dim=8, norm_groups=4, sample_size=8))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model, text_encoder


def test_a_model_that_reads_the_text_sees_the_flip_and_one_that_cannot_scores_one():
    scheduler = DDPMScheduler(beta_schedule="squaredcos_cap_v2")
    latents = torch.randn(2, 4, 3, 8, 8)
    positions = torch.arange(3.0) * 4
    model, text_encoder = tiny_model_and_text()
    rows = word_flip_effect(model, text_encoder, scheduler, latents, CAPTIONS, frame_positions=positions,
                            timesteps=(900, 300))
    assert [r["t"] for r in rows] == [900, 300]
    assert all(r["change"] > 0 and r["error_ratio"] != 1.0 for r in rows)

    class Blind(torch.nn.Module):  # the same prediction whatever the text says
        def forward(self, sample, timestep, text, text_mask, frame_positions=None):
            return 0.5 * sample

    blind = word_flip_effect(Blind(), text_encoder, scheduler, latents, CAPTIONS, frame_positions=positions,
                             timesteps=(999, 500))
    assert all(r["error_ratio"] == 1.0 and r["change"] == 0.0 for r in blind)
    with pytest.raises(ValueError, match="one caption per clip"):
        word_flip_effect(Blind(), text_encoder, scheduler, latents, CAPTIONS[:1], frame_positions=positions)
