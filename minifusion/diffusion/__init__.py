"""The diffusion core: noise schedules, the forward process, DDPM/DDIM/DPM-Solver++/Euler samplers,
guidance, thresholding, and exact denoisers for known data.

Names follow diffusers (``DDPMScheduler``, ``DDIMScheduler``, ``DPMSolverMultistepScheduler``,
``EulerDiscreteScheduler``, ``set_timesteps``,
``step(...).prev_sample``, ``add_noise``, ``get_velocity``); the code is written from the
papers it cites. Samples have the batch first and any rank: video is (B, C, F, H, W).
"""

from minifusion.diffusion.ddim import DDIMScheduler, DDIMSchedulerOutput
from minifusion.diffusion.ddpm import DDPMScheduler, DDPMSchedulerOutput
from minifusion.diffusion.dpm_solver import DPMSolverMultistepScheduler
from minifusion.diffusion.euler import EulerDiscreteScheduler
from minifusion.diffusion.guidance import (
    classifier_free_guidance,
    guidance_scale_from_paper_weight,
    paper_guidance,
    paper_weight_from_guidance_scale,
)
from minifusion.diffusion.oracle import GaussianDenoiser, PointSetDenoiser
from minifusion.diffusion.prediction import PREDICTION_TYPES, convert_model_output, model_output_from
from minifusion.diffusion.sampling import SamplingOutput, sample_loop
from minifusion.diffusion.schedules import (
    BETA_SCHEDULES,
    alphas_cumprod_from_betas,
    betas_for_alpha_bar,
    make_betas,
    rescale_zero_terminal_snr,
    snr,
)
from minifusion.diffusion.scheduling_utils import TIMESTEP_SPACINGS, BaseScheduler, SchedulerOutput
from minifusion.diffusion.sigmas import SigmaScheduler, karras_sigmas, sigmas_from_alphas_cumprod
from minifusion.diffusion.thresholding import clip_sample, dynamic_threshold, sample_range_from_data

__all__ = [
    "BETA_SCHEDULES",
    "PREDICTION_TYPES",
    "TIMESTEP_SPACINGS",
    "BaseScheduler",
    "DDIMScheduler",
    "DDIMSchedulerOutput",
    "DDPMScheduler",
    "DDPMSchedulerOutput",
    "DPMSolverMultistepScheduler",
    "EulerDiscreteScheduler",
    "GaussianDenoiser",
    "PointSetDenoiser",
    "SamplingOutput",
    "SchedulerOutput",
    "SigmaScheduler",
    "alphas_cumprod_from_betas",
    "betas_for_alpha_bar",
    "classifier_free_guidance",
    "clip_sample",
    "convert_model_output",
    "dynamic_threshold",
    "guidance_scale_from_paper_weight",
    "karras_sigmas",
    "make_betas",
    "model_output_from",
    "paper_guidance",
    "paper_weight_from_guidance_scale",
    "rescale_zero_terminal_snr",
    "sample_loop",
    "sample_range_from_data",
    "sigmas_from_alphas_cumprod",
    "snr",
]
