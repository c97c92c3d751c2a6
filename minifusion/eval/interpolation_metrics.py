"""Interpolated frames measured from the pixels: PSNR, SSIM, where the object is and how many there are.

FusionFrames (arXiv 2311.13073, section 3.2, Table 2) judges an interpolator by how close its
frames come to the real ones. PSNR alone hides the failure a blend of two keyframes shows: two
half-strength copies of the object ("ghosting") where the truth has one, at the right average
place. So, per generated frame of a window (B, 3, F, H, W) in [-1, 1] against the true frame:

- ``mse`` (-> PSNR, pooled over frames as ``recipes.common.psnr``: 10 log10(4 / mean MSE)) and
  ``ssim`` (``video_metrics.ssim``, Wang et al. 2004);
- ``centroid_error_px``: distance in pixels between the foreground centroids
  (``pixel_metrics.centroid_trajectory``) of the frame and of the true frame; for two-shape clips
  the centroid of all foreground (both objects together); NaN where either frame has no foreground;
- ``right_count``: ``coherence.count_objects`` equals the true frame's count (reported as
  ``one_object_rate``: on single-shape clips, "one object, as the truth");
- ``hit``: right count and centroid within ``hit_pixels`` (1.5 px) of the truth's.

Frames of a window: keyframes every ``n + 1`` frames (n = ``frames_per_pair``, 3 in FusionFrames),
generated frames at positions 1..n between them. ``outer`` = positions 1 and n (next to a
keyframe), ``middle`` = positions 2..n-1 (for n = 3: position 2, the hardest one), ``all`` = 1..n.
``summarize_interpolation`` aggregates per method and position, and per clip kind;
``interpolation_bars`` and ``format_interpolation_report`` turn an ``evaluate_interpolation``
result into pass/fail bars and a table.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch

from minifusion.checks import check_int, check_number, positive_int
from minifusion.eval.coherence import MIN_AREA, count_objects
from minifusion.eval.pixel_metrics import FOREGROUND_THRESHOLD, centroid_trajectory
from minifusion.eval.video_metrics import ssim

METHODS = ("model", "pixel_blend", "latent_blend", "autoencoder")
METHOD_LABELS = {"model": "model", "pixel_blend": "pixel blend", "latent_blend": "latent blend",
                 "autoencoder": "autoencoder (ceiling)"}
POSITIONS = ("outer", "middle", "all")
KINDS = ("single_shape", "two_shapes")
KIND_LABELS = {"all": "all clips", "single_shape": "single-shape clips", "two_shapes": "two-shape clips"}
HIT_PIXELS = 1.5  # a centroid this close to the truth's (pixels) is on target
FLATNESS_DB = 0.5  # bar: |PSNR outer - PSNR middle| of the model
RANGE_TOLERANCE = 1e-3


# -- frames of a window ---------------------------------------------------------------------------
def position_groups(num_frames: int, frames_per_pair: int = 3) -> dict[str, list[int]]:
    """Frame indices of the ``outer``, ``middle`` and ``all`` generated frames of a window of ``num_frames``.

    Keyframes sit at 0, n + 1, 2 (n + 1), ...; ``middle`` is empty for n < 3.
    """
    m = positive_int("frames_per_pair", frames_per_pair) + 1
    if check_int("num_frames", num_frames) < m + 1 or (num_frames - 1) % m:
        raise ValueError(f"a window of {num_frames!r} frames does not fit frames_per_pair {frames_per_pair}: it must "
                         f"be {m} (K - 1) + 1 frames for K >= 2 keyframes (e.g. {2 * m + 1})")
    position = [j % m for j in range(num_frames)]
    outer = {1, frames_per_pair}
    return {"outer": [j for j, p in enumerate(position) if p in outer],
            "middle": [j for j, p in enumerate(position) if p != 0 and p not in outer],
            "all": [j for j, p in enumerate(position) if p != 0]}


def _check_video(video: torch.Tensor, name: str) -> None:
    if not torch.is_tensor(video) or video.ndim != 5 or video.shape[1] != 3:
        shape = tuple(video.shape) if torch.is_tensor(video) else type(video).__name__
        raise ValueError(f"{name} must be RGB videos (B, 3, F, H, W), got shape {shape}")
    if not torch.isfinite(video).all():
        raise ValueError(f"{name} holds NaN or inf values; frames must be finite, in [-1, 1]")
    lo, hi = float(video.min()), float(video.max())
    if lo < -1 - RANGE_TOLERANCE or hi > 1 + RANGE_TOLERANCE:
        raise ValueError(f"{name} values span [{lo:.3g}, {hi:.3g}]; frames must be in [-1, 1] (clamp decoded frames)")


# -- per frame ------------------------------------------------------------------------------------
def object_features(video: torch.Tensor, *, threshold: float = FOREGROUND_THRESHOLD,
                    min_area: int = MIN_AREA) -> dict[str, torch.Tensor]:
    """``centroid_px`` (B, F, 2): foreground centroid (x, y) in pixels (NaN without foreground);
    ``objects`` (B, F): number of objects (``count_objects``) of videos (B, 3, F, H, W) in [-1, 1]."""
    _check_video(video, "video")
    h, w = video.shape[-2:]
    centroid = centroid_trajectory(video, threshold=threshold) * torch.tensor([float(w), float(h)])
    return {"centroid_px": centroid, "objects": count_objects(video, min_area=min_area, threshold=threshold)}


def frame_scores(frames: torch.Tensor, truth: torch.Tensor, *, hit_pixels: float = HIT_PIXELS,
                 threshold: float = FOREGROUND_THRESHOLD, min_area: int = MIN_AREA,
                 truth_features: Mapping[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """Scores of every frame of ``frames`` against ``truth`` (both (B, 3, F, H, W) in [-1, 1]), each (B, F).

    ``mse``, ``ssim``, ``centroid_error_px`` (NaN where either frame has no foreground),
    ``objects``, ``true_objects``, ``right_count`` and ``hit`` (right count and centroid error
    <= ``hit_pixels``). ``truth_features`` (``object_features(truth)``) saves recomputing them.
    """
    _check_video(frames, "frames")
    _check_video(truth, "truth")
    if frames.shape != truth.shape:
        raise ValueError(f"frames and truth must have the same shape, got {tuple(frames.shape)} and "
                         f"{tuple(truth.shape)}")
    check_number("hit_pixels", hit_pixels, minimum=0, exclusive_minimum=True, finite=False, note="(pixels)")
    frames, truth = frames.detach().float().cpu().clamp(-1, 1), truth.detach().float().cpu().clamp(-1, 1)
    mine = object_features(frames, threshold=threshold, min_area=min_area)
    true = truth_features if truth_features is not None else object_features(truth, threshold=threshold,
                                                                              min_area=min_area)
    if tuple(true["objects"].shape) != tuple(frames.shape[:1] + frames.shape[2:3]):
        raise ValueError(f"truth_features are for {tuple(true['objects'].shape)} frames, the videos hold "
                         f"{tuple(frames.shape[:1] + frames.shape[2:3])}")
    error = (mine["centroid_px"] - true["centroid_px"]).norm(dim=-1)  # (B, F); NaN if either is missing
    right = mine["objects"] == true["objects"]
    return {"mse": (frames.double() - truth.double()).pow(2).mean(dim=(1, 3, 4)),  # (B, F)
            "ssim": ssim(frames, truth).double(),
            "centroid_error_px": error.double(),
            "objects": mine["objects"], "true_objects": true["objects"],
            "right_count": right, "hit": right & (error <= hit_pixels)}


def latent_frame_mse(latents: torch.Tensor, true_latents: torch.Tensor) -> torch.Tensor:
    """(B, F) mean squared error per frame of latents (B, C, F, h, w) against the encoded true frames."""
    for name, x in (("latents", latents), ("true_latents", true_latents)):
        if not torch.is_tensor(x) or x.ndim != 5:
            shape = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
            raise ValueError(f"{name} must be video latents (B, C, F, h, w), got shape {shape}")
    if latents.shape != true_latents.shape:
        raise ValueError(f"latents and true_latents must have the same shape, got {tuple(latents.shape)} and "
                         f"{tuple(true_latents.shape)}")
    return (latents.detach().double().cpu() - true_latents.detach().double().cpu()).pow(2).mean(dim=(1, 3, 4))


# -- aggregation ----------------------------------------------------------------------------------
def summarize_frames(scores: Mapping[str, torch.Tensor], frame_indices: Sequence[int], *,
                     clip_indices: Sequence[int] | None = None,
                     latent_mse: torch.Tensor | None = None) -> dict | None:
    """One group of frames (``frame_indices`` of clips ``clip_indices``, default all) as plain numbers.

    ``psnr_db`` from the mean MSE (as ``recipes.common.psnr``; inf for exact frames), mean
    ``ssim``, mean ``centroid_error_px`` over frames where both have foreground (NaN if none),
    ``one_object_rate`` (share with the true number of objects), ``hit_rate``, mean ``latent_mse``
    (None without ``latent_mse`` (B, F)), ``num_frames``. None for an empty group.
    """
    frames = list(frame_indices)
    clips = list(range(scores["mse"].shape[0])) if clip_indices is None else list(clip_indices)
    if not frames or not clips:
        return None
    pick = lambda x: x[clips][:, frames]  # noqa: E731  (clips, frames)
    mse = float(pick(scores["mse"]).double().mean())
    error = pick(scores["centroid_error_px"]).double()
    finite = error[torch.isfinite(error)]
    return {"psnr_db": math.inf if mse == 0 else 10 * math.log10(4 / mse),
            "ssim": float(pick(scores["ssim"]).double().mean()),
            "centroid_error_px": float(finite.mean()) if finite.numel() else math.nan,
            "one_object_rate": float(pick(scores["right_count"]).double().mean()),
            "hit_rate": float(pick(scores["hit"]).double().mean()),
            "latent_mse": None if latent_mse is None else float(pick(latent_mse).double().mean()),
            "num_frames": len(clips) * len(frames)}


def summarize_interpolation(scores: Mapping[str, Mapping[str, torch.Tensor]], *, frames_per_pair: int = 3,
                            kinds: Sequence[str | None] | None = None,
                            latent_mse: Mapping[str, torch.Tensor] | None = None) -> dict:
    """Aggregate ``frame_scores`` of each method ({method: scores}) by position, and by clip kind.

    ``kinds``: one per clip, "single_shape", "two_shapes" or None (unknown: counted in the whole
    set only). ``latent_mse``: {method: (B, F)} per-frame latent errors (``latent_frame_mse``; NaN
    or anything at keyframes). Returns::

        {"by_position": {method: {"outer" | "middle" | "all": summarize_frames(...)}},
         "by_kind": {"single_shape" | "two_shapes": {"num_clips": n, "by_position": {...}} or None}}
    """
    if not scores:
        raise ValueError("scores must hold at least one method, got none")
    latent_mse = latent_mse or {}
    unknown = set(latent_mse) - set(scores)
    if unknown:
        raise ValueError(f"latent_mse names methods {sorted(unknown)} without scores; methods: {sorted(scores)}")
    first = next(iter(scores.values()))["mse"]
    num_clips, num_frames = first.shape
    for method, s in scores.items():
        if tuple(s["mse"].shape) != (num_clips, num_frames):
            raise ValueError(f"scores of {method!r} are for {tuple(s['mse'].shape)} frames, the first method's for "
                             f"{(num_clips, num_frames)}")
    kinds = [None] * num_clips if kinds is None else list(kinds)
    if len(kinds) != num_clips:
        raise ValueError(f"kinds must name one kind per clip: {num_clips} clips, got {len(kinds)} kinds")
    bad = {k for k in kinds if k is not None and k not in KINDS}
    if bad:
        raise ValueError(f"kinds {sorted(bad)} are not allowed; a clip kind is one of {KINDS} or None")
    groups = position_groups(num_frames, frames_per_pair)

    def by_position(clips):
        return {method: {pos: summarize_frames(s, groups[pos], clip_indices=clips, latent_mse=latent_mse.get(method))
                         for pos in POSITIONS} for method, s in scores.items()}

    by_kind = {}
    for kind in KINDS:
        clips = [i for i, k in enumerate(kinds) if k == kind]
        by_kind[kind] = {"num_clips": len(clips), "by_position": by_position(clips)} if clips else None
    return {"by_position": by_position(None), "by_kind": by_kind}


# -- bars and report ------------------------------------------------------------------------------
def _pass1(results: Mapping) -> Mapping:
    r = results.get("pass1") if isinstance(results, Mapping) else None
    if not isinstance(r, Mapping) or "by_position" not in r:
        raise ValueError("results must be an evaluate_interpolation result whose 'pass1' holds 'by_position', got "
                         f"{type(r).__name__ if not isinstance(r, Mapping) else sorted(r)}")
    return r["by_position"]


def interpolation_bars(results: Mapping) -> list[dict]:
    """Pass/fail bars on pass 1 of an ``evaluate_interpolation`` result, for the middle frames (position 2)
    and for all generated frames: the model above the latent blend on PSNR and SSIM, below it on
    latent MSE, at least its hit rate; and the model's PSNR as good next to a keyframe as in the middle
    (|outer - middle| <= ``FLATNESS_DB``). Each bar: ``{"name", "value", "target", "passed"}``."""
    by_position = _pass1(results)
    for method in ("model", "latent_blend"):
        if method not in by_position:
            raise ValueError(f"results['pass1']['by_position'] lacks method {method!r}; it has {sorted(by_position)}")
    model, blend = by_position["model"], by_position["latent_blend"]
    bars = []
    for pos, label in (("middle", "middle frames"), ("all", "all 3 positions")):
        m, b = model[pos], blend[pos]
        if m is None or b is None:
            continue
        for key, name, better in (("psnr_db", "PSNR (dB) above the latent blend", "higher"),
                                  ("ssim", "SSIM above the latent blend", "higher"),
                                  ("latent_mse", "latent MSE below the latent blend", "lower"),
                                  ("hit_rate", "hit rate at least the latent blend's", "at_least")):
            value, target = m[key], b[key]
            if value is None or target is None:
                continue
            passed = {"higher": value > target, "lower": value < target, "at_least": value >= target}[better]
            bars.append({"name": f"pass 1, {label}: model {name}", "value": value, "target": target,
                         "passed": bool(passed)})
    if model["outer"] is not None and model["middle"] is not None:
        gap = abs(model["outer"]["psnr_db"] - model["middle"]["psnr_db"])
        bars.append({"name": "pass 1: model |PSNR outer - PSNR middle| (dB) at most", "value": gap,
                     "target": FLATNESS_DB, "passed": bool(gap <= FLATNESS_DB)})
    return bars


def _number(value, fmt: str, scale: float = 1.0) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and math.isnan(value):
        return "n/a"
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    return format(value * scale, fmt)


def _table(title: str, passes: list[tuple[str, Mapping]]) -> list[str]:
    header = (f"{'pass':<7}{'position':<9}{'method':<23}{'PSNR dB':>8}{'SSIM':>8}{'centroid px':>12}"
              f"{'1 object %':>11}{'hit %':>8}{'latent MSE':>12}{'frames':>8}")
    lines = [title, header, "-" * len(header)]
    for key, by_position in passes:
        for pos in POSITIONS:
            for method in METHODS:
                r = by_position.get(method, {}).get(pos)
                if r is None:
                    continue
                lines.append(f"{key:<7}{pos:<9}{METHOD_LABELS[method]:<23}{_number(r['psnr_db'], '.2f'):>8}"
                             f"{_number(r['ssim'], '.4f'):>8}{_number(r['centroid_error_px'], '.2f'):>12}"
                             f"{_number(r['one_object_rate'], '.1f', 100):>11}{_number(r['hit_rate'], '.1f', 100):>8}"
                             f"{_number(r['latent_mse'], '.4f'):>12}{r['num_frames']:>8}")
        lines.append("")
    return lines


def format_bars(bars: Sequence[Mapping]) -> str:
    """One line per bar: PASS/FAIL, name, value and target."""
    return "\n".join(f"  {'PASS' if b['passed'] else 'FAIL'}  {b['name']}: {b['value']:.4g} (target {b['target']:.4g})"
                     for b in bars)


def format_interpolation_report(results: Mapping) -> str:
    """A side-by-side table of an ``evaluate_interpolation`` result (rows: pass x position x method; columns
    PSNR, SSIM, centroid error, one-object %, hit %, latent MSE), for all clips then per clip kind,
    followed by ``interpolation_bars`` with PASS/FAIL."""
    _pass1(results)
    passes = [(k, results[k]) for k in ("pass1", "pass2") if isinstance(results.get(k), Mapping)]
    kinds = results.get("clip_kinds", {})
    lines = [f"Interpolating true keyframes of {results.get('num_clips', '?')} clips ({results.get('clips', '?')}; "
             f"{_kinds_line(kinds)}), sampler {results.get('sampler', '?')}, "
             f"{results.get('num_inference_steps', '?')} steps, guidance {results.get('guidance_scale', '?')}.",
             "Frames between two keyframes: outer = positions 1 and 3, middle = position 2. Centroid: of all "
             "foreground (both objects in two-shape clips), pixels of the frame; "
             f"hit = right object count and centroid within {HIT_PIXELS:g} px.",
             ""]
    for k, r in passes:
        lines.append(f"{k}: keyframes {r['frame_skip']:g} source frame{'' if r['frame_skip'] == 1 else 's'} apart")
    lines.append("")
    lines += _table(KIND_LABELS["all"], [(k, r["by_position"]) for k, r in passes])
    for kind in KINDS:
        rows = [(k, r["by_kind"][kind]["by_position"]) for k, r in passes if r.get("by_kind", {}).get(kind)]
        if rows:
            n = passes[0][1]["by_kind"][kind]["num_clips"]
            lines += _table(f"{KIND_LABELS[kind]} ({n})", rows)
    lines.append("Bars (pass 1):")
    lines.append(format_bars(interpolation_bars(results)))
    return "\n".join(lines)


def _kinds_line(kinds: Mapping) -> str:
    single = kinds.get("single_shape")
    if not single and not kinds.get("two_shapes"):
        return "clip kinds unknown"
    speeds = ", ".join(f"{n} {s}" for s, n in (single or {}).items())
    return f"single-shape: {sum((single or {}).values())} ({speeds}); two-shape: {kinds.get('two_shapes', 0)}"


__all__ = ["FLATNESS_DB", "HIT_PIXELS", "KINDS", "METHODS", "POSITIONS", "format_bars", "format_interpolation_report",
           "frame_scores", "interpolation_bars", "latent_frame_mse", "object_features", "position_groups",
           "summarize_frames", "summarize_interpolation"]
