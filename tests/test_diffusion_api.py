"""What DDPMScheduler and DDIMScheduler share: config, timesteps, forward process, conversions, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from minifusion.diffusion import (
    DDIMScheduler,
    DDPMScheduler,
    alphas_cumprod_from_betas,
    convert_model_output,
    make_betas,
)

SCHEDULERS = [DDPMScheduler, DDIMScheduler]


# ------------------------------------------------------------------ config
@pytest.mark.parametrize("cls", SCHEDULERS)
def test_config_round_trips(cls):
    s = cls(beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction", timestep_spacing="trailing",
            thresholding=True, clip_sample_range=3.0, sample_max_value=6.0)
    again = cls(**s.config)
    assert again.config == s.config
    assert torch.equal(again.alphas_cumprod, s.alphas_cumprod)
    assert cls.from_config(s.config).config == s.config
    assert cls.from_config(s.config, prediction_type="epsilon").config["prediction_type"] == "epsilon"
    s.config["beta_schedule"] = "linear"  # a copy: editing it does not change the scheduler
    assert s.config["beta_schedule"] == "squaredcos_cap_v2"


def test_from_config_between_ddpm_and_ddim():
    ddpm = DDPMScheduler(beta_schedule="squaredcos_cap_v2", variance_type="fixed_large")
    ddim = DDIMScheduler.from_config(ddpm.config)
    assert "variance_type" not in ddim.config and ddim.config["beta_schedule"] == "squaredcos_cap_v2"
    assert "set_alpha_to_one" not in DDPMScheduler.from_config(ddim.config).config
    with pytest.raises(ValueError, match="unknown config keys \\['beta_max'\\]"):
        DDIMScheduler.from_config({**ddim.config, "beta_max": 1.0})


# --------------------------------------------------------------- timesteps
@pytest.mark.parametrize("cls", SCHEDULERS)
def test_timestep_spacings(cls):
    s = cls(timestep_spacing="leading")
    s.set_timesteps(50)
    assert s.timesteps.dtype == torch.int64
    assert s.timesteps.tolist() == list(range(980, -1, -20))  # leading starts below 999
    s = cls(timestep_spacing="leading", steps_offset=1)
    s.set_timesteps(50)
    assert s.timesteps[0].item() == 981 and s.timesteps[-1].item() == 1
    s = cls(timestep_spacing="trailing")
    s.set_timesteps(50)
    assert s.timesteps.tolist() == list(range(999, 0, -20))  # starts at 999: pure noise
    s.set_timesteps(3)
    assert s.timesteps.tolist() == [999, 666, 332]  # round(1000 - k * 1000 / 3) - 1
    s = cls(timestep_spacing="linspace")
    s.set_timesteps(4)
    assert s.timesteps.tolist() == [999, 666, 333, 0]
    s.set_timesteps(1000)
    assert s.timesteps.tolist() == list(range(999, -1, -1))
    assert s.num_inference_steps == 1000


@pytest.mark.parametrize("bad", [0, 1001, 2.5, True, "10"])
def test_num_inference_steps_must_be_int_in_range(bad):
    with pytest.raises(ValueError, match=r"num_inference_steps must be an int in 1\.\.1000.*got"):
        DDIMScheduler().set_timesteps(bad)


def test_numpy_int_steps_accepted():
    s = DDPMScheduler()
    s.set_timesteps(np.int64(10))
    assert len(s.timesteps) == 10


def test_steps_offset_past_the_end_raises():
    with pytest.raises(ValueError, match="steps_offset 5 pushes the first timestep to 1004"):
        DDPMScheduler(steps_offset=5).set_timesteps(1000)


# --------------------------------------------------------- argument errors
@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(prediction_type="x0"), "prediction_type 'x0' is not one of 'epsilon', 'v_prediction', 'sample'"),
        (dict(timestep_spacing="uniform"), "'uniform' is not one of 'leading', 'trailing', 'linspace'"),
        (dict(beta_schedule="cosine"), "beta_schedule 'cosine' is not one of"),
        (dict(clip_sample_range=0.0), "clip_sample_range 0.0 is not allowed; it must be a finite number > 0"),
        (dict(thresholding=True, clip_sample_range=4.0, sample_max_value=1.0), "sample_max_value"),
        (dict(dynamic_thresholding_ratio=1.5), r"dynamic_thresholding_ratio 1.5 is not allowed; .* in \(0, 1\]"),
        (dict(steps_offset=-1), "steps_offset -1 is not allowed; it must be an integer >= 0"),
        (dict(clip_sample="yes"), "clip_sample must be True or False"),
    ],
)
@pytest.mark.parametrize("cls", SCHEDULERS)
def test_bad_constructor_arguments_raise(cls, kwargs, message):
    with pytest.raises(ValueError, match=message):
        cls(**kwargs)


def test_bad_variance_type_and_eta_raise():
    with pytest.raises(ValueError, match="variance_type 'learned' is not one of 'fixed_small', 'fixed_large'"):
        DDPMScheduler(variance_type="learned")
    s = DDIMScheduler()
    s.set_timesteps(10)
    x = torch.zeros(1, 2)
    with pytest.raises(ValueError, match="eta -0.5 is not allowed; it must be a number in \\[0, 1\\]"):
        s.step(x, s.timesteps[0], x, eta=-0.5)


@pytest.mark.parametrize("cls", SCHEDULERS)
def test_step_errors(cls):
    s = cls()
    x = torch.zeros(2, 3, 4, 4)
    with pytest.raises(ValueError, match="call set_timesteps"):
        s.step(x, 999, x)
    s.set_timesteps(10)
    with pytest.raises(ValueError, match="timestep 998 is not in the schedule"):
        s.step(x, 998, x)
    with pytest.raises(ValueError, match="timestep 1000 is outside 0..999"):
        s.step(x, 1000, x)
    with pytest.raises(ValueError, match=r"model_output has shape \(2, 3, 4\) but sample has shape \(2, 3, 4, 4\)"):
        s.step(x[..., 0], s.timesteps[0], x)
    with pytest.raises(ValueError, match="floating-point tensor, got dtype torch.int64"):
        s.step(x.long(), s.timesteps[0], x)
    with pytest.raises(ValueError, match="timestep must be an integer, got a torch.float32 tensor"):
        s.step(x, torch.tensor(900.0), x)
    with pytest.raises(ValueError, match="one timestep for the whole batch"):
        s.step(x, torch.tensor([900, 900]), x)


# -------------------------------------------------------- forward process
@pytest.mark.parametrize("cls", SCHEDULERS)
def test_add_noise_is_the_forward_process_for_any_rank(cls):
    s = cls(beta_schedule="squaredcos_cap_v2")
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(3, 4, 2, 5, 5, generator=g)  # video (B, C, F, H, W)
    noise = torch.randn(x0.shape, generator=g)
    # float64 reference: near t = 0, 1 - alpha_bar ~ 4e-5 loses 3 digits if alpha_bar is float32
    ab = alphas_cumprod_from_betas(make_betas("squaredcos_cap_v2", 1000))
    for t in (0, 500, 999):
        expected = ab[t].sqrt() * x0 + (1 - ab[t]).sqrt() * noise
        assert torch.allclose(s.add_noise(x0, noise, t), expected.float(), atol=1e-6)
        assert torch.allclose(s.add_noise(x0, noise, torch.tensor(t)), expected.float(), atol=1e-6)
    ts = torch.tensor([0, 400, 999])
    out = s.add_noise(x0, noise, ts)
    for i, t in enumerate(ts.tolist()):
        assert torch.allclose(out[i], (ab[t].sqrt() * x0[i] + (1 - ab[t]).sqrt() * noise[i]).float(), atol=1e-6)
    with pytest.raises(ValueError, match=r"timesteps has shape \(2,\); need one per sample, \(3,\)"):
        s.add_noise(x0, noise, torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="must lie in 0..999"):
        s.add_noise(x0, noise, torch.tensor([1, 2, 1000]))
    with pytest.raises(ValueError, match="integer tensor"):
        s.add_noise(x0, noise, torch.tensor([1.0, 2.0, 3.0]))
    with pytest.raises(ValueError, match="has shape"):
        s.add_noise(x0, noise[:, :2], 10)


def test_velocity_and_training_targets():
    g = torch.Generator().manual_seed(1)
    x0 = torch.randn(4, 3, 8, 8, generator=g)  # images (B, C, H, W)
    noise = torch.randn(x0.shape, generator=g)
    t = torch.tensor([10, 300, 700, 999])
    s = DDPMScheduler(beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction")
    ab = alphas_cumprod_from_betas(make_betas("squaredcos_cap_v2", 1000))[t].reshape(-1, 1, 1, 1)
    v = (ab.sqrt() * noise - (1 - ab).sqrt() * x0).float()
    assert torch.allclose(s.get_velocity(x0, noise, t), v, atol=1e-6)
    assert torch.allclose(s.training_target(x0, noise, t), v, atol=1e-6)
    assert torch.equal(DDPMScheduler(prediction_type="epsilon").training_target(x0, noise, t), noise)
    assert torch.equal(DDPMScheduler(prediction_type="sample").training_target(x0, noise, t), x0)


def test_every_prediction_type_recovers_the_same_x0_and_eps():
    g = torch.Generator().manual_seed(2)
    x0 = torch.randn(2, 3, 4, 4, dtype=torch.float64, generator=g)
    noise = torch.randn(x0.shape, dtype=torch.float64, generator=g)
    for t in (5, 400, 900):
        outputs = {}
        for p in ("epsilon", "v_prediction", "sample"):
            s = DDIMScheduler(beta_schedule="squaredcos_cap_v2", prediction_type=p)
            x_t = s.add_noise(x0, noise, t)
            outputs[p] = s.predict_x0_and_eps(s.training_target(x0, noise, t), t, x_t)
        for p, (px0, peps) in outputs.items():
            assert torch.allclose(px0, x0, atol=1e-8), (p, t)
            assert torch.allclose(peps, noise, atol=1e-8), (p, t)


def test_v_and_epsilon_give_the_same_clean_estimate_from_consistent_outputs():
    # a (not exact) model: any eps_hat, and the v_hat that is consistent with it at x_t
    g = torch.Generator().manual_seed(3)
    x_t = torch.randn(3, 4, 2, 4, 4, dtype=torch.float64, generator=g)
    eps_hat = torch.randn(x_t.shape, dtype=torch.float64, generator=g)
    ab = 0.3
    x0_from_eps, _ = convert_model_output(eps_hat, x_t, ab, "epsilon")
    v_hat = ab**0.5 * eps_hat - (1 - ab) ** 0.5 * x0_from_eps
    x0_from_v, eps_from_v = convert_model_output(v_hat, x_t, ab, "v_prediction")
    assert torch.allclose(x0_from_v, x0_from_eps, atol=1e-10)
    assert torch.allclose(eps_from_v, eps_hat, atol=1e-10)
    # and the textbook formula for v: x0 = sqrt(ab) x_t - sqrt(1 - ab) v
    assert torch.allclose(x0_from_v, ab**0.5 * x_t - (1 - ab) ** 0.5 * v_hat)


@pytest.mark.parametrize("cls", SCHEDULERS)
def test_scale_model_input_is_identity_and_return_dict_false_is_a_tuple(cls):
    s = cls()
    s.set_timesteps(5)
    x = torch.randn(2, 3)
    assert s.scale_model_input(x, s.timesteps[0]) is x
    out = s.step(torch.zeros_like(x), s.timesteps[0], x, return_dict=False)
    assert isinstance(out, tuple) and len(out) == 2
    full = s.step(torch.zeros_like(x), s.timesteps[0], x, generator=torch.Generator().manual_seed(0))
    assert full.prev_sample.shape == x.shape and full.pred_original_sample.shape == x.shape


@pytest.mark.parametrize("cls", SCHEDULERS)
def test_same_seed_same_samples(cls):
    def run(seed):
        s = cls(beta_schedule="squaredcos_cap_v2")
        s.set_timesteps(8)
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(4, 2, 3, 3, generator=g)
        for t in s.timesteps:
            kwargs = {"eta": 1.0} if cls is DDIMScheduler else {}
            x = s.step(0.9 * x, t, x, generator=g, **kwargs).prev_sample
        return x

    assert torch.equal(run(0), run(0))
    assert not torch.allclose(run(0), run(1))
