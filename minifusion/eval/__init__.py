"""Evaluation of generated videos.

- ``pixel_metrics``: weight-free checks of decoded Moving Shapes videos - dominant colour,
  direction of motion of the shape's centroid, background flicker - used during keyframe
  training (the loss says nothing about motion);
- ``video_metrics``: reconstruction quality against ground-truth frames - PSNR, SSIM, flicker
  ratio and temporal error - for interpolation and video decoders (FusionFrames Tables 2-3).
- ``interpolation_metrics``: interpolated frames against the true ones per position between
  keyframes and per clip kind - PSNR, SSIM, centroid error, object count, hit rate - with the
  bars and report of ``evaluate_interpolation`` (FusionFrames section 3.2, Table 2).

Learned toy metrics (trained on Moving Shapes, shipped in ``data_samples/checkpoints/eval``):

- ``video_encoder``: the two-stream video network both learned metrics use, and the input
  contract (``prepare_video``: (B, 3, F, 64, 64) in ``value_range``, 8 evenly spaced frames);
- ``attribute_classifier``: per-attribute heads (colour, shape, motion, direction, speed, size,
  background); caption accuracy;
- ``frechet``: Frechet distance of Gaussian fits of its features (the FVD analogue);
- ``inception_score``: the IS analogue from its class probabilities, per head;
- ``text_video``: a small contrastive (CLIP-style) text-video model; the CLIPSIM analogue;
- ``toy_metrics``: ``ToyMetrics``, both networks loaded together and every figure for a set of videos;
- ``metric_data`` and ``train_metrics``: the clips and the recipe that trained the shipped weights;
- ``evaluate``: ``python -m minifusion evaluate``, every metric of a pipeline.
"""

from minifusion.eval.attribute_classifier import (
    ATTRIBUTES,
    AttributeClassifier,
    AttributeClassifierConfig,
    attribute_labels,
    caption_accuracy,
)
from minifusion.eval.evaluate import evaluate_pipeline, prompt_grid
from minifusion.eval.frechet import feature_frechet_distance, frechet_distance, gaussian_fit, sqrtm_psd
from minifusion.eval.inception_score import inception_score
from minifusion.eval.interpolation_metrics import (
    format_interpolation_report,
    frame_scores,
    interpolation_bars,
    summarize_interpolation,
)
from minifusion.eval.metric_data import ClipStream, labelled_clips, shuffle_frames
from minifusion.eval.pixel_metrics import (
    background_color,
    background_flicker,
    centroid_trajectory,
    classify_colors,
    direction_name,
    displacement,
    dominant_color,
    foreground_mask,
    motion_direction,
    motion_report,
)
from minifusion.eval.text_video import TextVideoModel, TextVideoModelConfig, contrastive_loss
from minifusion.eval.toy_metrics import EVAL_WEIGHTS_DIR, ToyMetrics, VideoMeasurements, prompt_attributes
from minifusion.eval.video_encoder import NUM_FRAMES, VideoEncoder, frame_indices, prepare_video
from minifusion.eval.video_metrics import (
    flicker_ratio,
    frame_difference,
    gaussian_window,
    reconstruction_report,
    ssim,
    ssim_map,
    temporal_error,
)
from minifusion.eval.video_metrics import psnr as video_psnr

__all__ = [
    "flicker_ratio", "frame_difference", "gaussian_window", "reconstruction_report", "ssim", "ssim_map",
    "temporal_error", "video_psnr",
    "format_interpolation_report", "frame_scores", "interpolation_bars", "summarize_interpolation",
    "background_color", "background_flicker", "centroid_trajectory", "classify_colors", "direction_name",
    "displacement", "dominant_color", "foreground_mask", "motion_direction", "motion_report",
    "NUM_FRAMES", "VideoEncoder", "frame_indices", "prepare_video",
    "ATTRIBUTES", "AttributeClassifier", "AttributeClassifierConfig", "attribute_labels", "caption_accuracy",
    "feature_frechet_distance", "frechet_distance", "gaussian_fit", "sqrtm_psd", "inception_score",
    "TextVideoModel", "TextVideoModelConfig", "contrastive_loss",
    "EVAL_WEIGHTS_DIR", "ToyMetrics", "VideoMeasurements", "prompt_attributes",
    "ClipStream", "labelled_clips", "shuffle_frames", "evaluate_pipeline", "prompt_grid",
]
