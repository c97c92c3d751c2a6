"""What the shipped checkpoint generates stays as good as it was measured (the motion benchmark's checks).

Eight balanced prompts (every direction once, eight (colour, shape) pairs), 29 frames at the
checkpoint's own sampler, steps and guidance, seed 0, scored from the pixels by the motion benchmark
(``minifusion.eval.motion_benchmark``) and the shipped attribute classifier. The bounds sit a margin
below what the shipped checkpoint scores here (printed by this test's ``main``:
``python tests/test_shipped_quality.py``), so a broken or replaced keyframe model, text encoder,
autoencoder or sampler fails. Replacing the keyframe U-Net's weights by random ones gives brown noise
and fails it (``python tests/test_shipped_quality.py --random-keyframe-unet`` shows it). Direction is
at chance for this checkpoint (the motion issue); raise the bounds when a better checkpoint ships.
"""

from __future__ import annotations

import torch

from minifusion.eval.attribute_classifier import AttributeClassifier
from minifusion.eval.motion_benchmark import motion_prompts, score_videos
from minifusion.eval.toy_metrics import EVAL_WEIGHTS_DIR
from minifusion.pipeline import FusionFramesPipeline
from minifusion.pipelines import pretrained

NUM_VIDEOS = 8
# what the shipped checkpoint scored on these 8 videos, and the bound the test asserts (count of 8)
SHIPPED = {"color": 8, "shape": 7, "direction": 3}
BOUNDS = {"color": 7, "shape": 5, "direction": 1}


def measure(pipe: FusionFramesPipeline | None = None) -> dict[str, int]:
    pipe = pipe or FusionFramesPipeline.from_pretrained(pretrained())
    prompts = motion_prompts(NUM_VIDEOS)
    videos = pipe([p["prompt"] for p in prompts], output_type="pt", progress=False,
                  generator=torch.Generator().manual_seed(0)).frames  # (8, 3, 29, 64, 64) in [0, 1]
    classifier = AttributeClassifier.from_pretrained(EVAL_WEIGHTS_DIR / "attribute_classifier")
    rows = score_videos(videos, prompts, classifier=classifier)
    return {"color": sum(r["color_ok"] for r in rows), "shape": sum(r["shape_ok"] for r in rows),
            "one_object": sum(r["one_object"] for r in rows), "direction": sum(r["direction_ok"] for r in rows),
            "steady": sum(r["steady"] for r in rows)}


def test_the_shipped_checkpoint_draws_the_prompted_colour_and_shape_and_moves_as_it_did():
    got = measure()
    for name, bound in BOUNDS.items():
        assert got[name] >= bound, f"{name}: {got[name]} of {NUM_VIDEOS} videos, shipped {SHIPPED[name]}, bound {bound}"


if __name__ == "__main__":
    import sys

    torch.set_num_threads(1)
    pipe = FusionFramesPipeline.from_pretrained(pretrained())
    if "--random-keyframe-unet" in sys.argv[1:]:
        torch.manual_seed(0)
        with torch.no_grad():
            for p in pipe.keyframe_unet.parameters():
                p.copy_(torch.randn_like(p) * p.std().clamp(min=0.02))
    print(measure(pipe), "bounds", BOUNDS)
