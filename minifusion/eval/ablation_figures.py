"""One picture per ablation table: what the trained variants of one seed actually produce.

A table's numbers say which variant is better; the picture shows what "better" looks like
(``python -m minifusion ablate TABLE --figure`` writes ``OUT/TABLE.png``, notebook 12 shows it).
Every row comes from the weights in a run folder of the same seed, so the figure needs the runs'
weights on this machine (they are not committed, only ``result.json`` is); by default it draws a
seed whose finished runs all still hold their weights here (``figure_seed``).

- Table 1 (FusionFrames section 4.1): the 8 keyframes each temporal variant draws for the same
  prompts and the same noise;
- Table 2 (section 4.2): the first frames of a held-out clip interpolated from its true keyframes
  (pass 1) by FusionFrames and by MFI, under the truth, a linear blend of the pixels and one of the
  latents; keyframes framed red;
- Table 3 (section 4.3): a held-out clip, its reconstruction by the image decoder, and the error
  |reconstruction - truth| (amplified 4x) of the image decoder and of each video decoder.
"""

from __future__ import annotations

import io
from pathlib import Path

import torch
from PIL import Image

FIGURE_PROMPTS = ("a red circle moves right", "a blue circle moves up")  # table 1; blue circle is a held-out pair


def _has_weights(folder: Path) -> bool:
    """Whether a run folder still holds what it trained: a saved part (config.json) that is not a link to the base."""
    return folder.is_dir() and any(p.is_dir() and not p.is_symlink() and (p / "config.json").is_file()
                                   for p in folder.iterdir())


def _finished(out: Path, spec, seed: int) -> dict[str, Path]:
    from minifusion.eval.ablation import RESULT_NAME, run_folder

    return {v: run_folder(out, spec, v, seed) for v in spec.variants
            if (run_folder(out, spec, v, seed) / RESULT_NAME).is_file()}


def _available(out: Path, spec, seed: int) -> dict[str, Path]:
    """The finished runs of ``seed`` whose weights are here (a row with nothing to train needs none)."""
    return {v: f for v, f in _finished(out, spec, seed).items() if spec.stage_of(v) is None or _has_weights(f)}


def figure_seed(key: str, out: str | Path) -> int:
    """The seed to draw: of the seeds whose finished runs all still hold their weights on this machine,
    the one with the most runs (the lowest on a tie).

    Only ``result.json`` is committed, so a clone (or a later session) that finished more seeds than
    it trained itself can draw only the seeds it trained. Raises ValueError when no seed qualifies.
    """
    from minifusion.eval.ablation_tables import TABLES

    if key not in TABLES:
        raise ValueError(f"table {key!r} is not one of {sorted(TABLES)}")
    spec, out = TABLES[key], Path(out)
    best, best_count, seed = None, 0, 0
    while finished := _finished(out, spec, seed):
        count = len(_available(out, spec, seed))
        if count == len(finished) and count > best_count and any(spec.stage_of(v) for v in finished):
            best, best_count = seed, count
        seed += 1
    if best is None:
        raise ValueError(f"no seed of {key} under {str(out)!r} has its runs' weights on this machine (only "
                         f"result.json is committed); run `python -m minifusion ablate {key}` here first")
    return best


def _keyframe_rows(runs: dict[str, Path], seed: int, steps: int) -> dict[str, torch.Tensor]:
    from minifusion.pipeline import FusionFramesPipeline

    rows = {}
    for variant, folder in runs.items():
        pipe = FusionFramesPipeline.from_pretrained(folder)
        out = pipe(list(FIGURE_PROMPTS), interpolation_passes=0, num_inference_steps=steps, output_type="pt",
                   generator=torch.Generator().manual_seed(seed), progress=False)
        for prompt, video in zip(FIGURE_PROMPTS, out.frames.float()):  # (3, 8, H, W) in [0, 1]
            rows[f"{variant}: {prompt}"] = video * 2 - 1
    return rows


def _interpolation_rows(runs: dict[str, Path], seed: int, steps: int, frames: int = 13) -> dict[str, torch.Tensor]:
    from minifusion.eval.ablation_tables import _load_interpolator
    from minifusion.eval.interpolation_eval import evaluate_interpolation
    from minifusion.models import Autoencoder

    rows = {}
    for variant, folder in runs.items():
        if variant == "latent_blend":  # no network: its row comes with every evaluation's frames
            continue
        model, scheduler = _load_interpolator(folder, variant)
        autoencoder = Autoencoder.from_pretrained(folder / "autoencoder").eval()
        result = evaluate_interpolation(model.eval(), scheduler, autoencoder, num_clips=1, seed=1000 + seed,
                                        num_inference_steps=steps, return_frames=True)
        pass1 = result["pass1"]["frames"]  # {"truth", "model", "blend"}: (1, 3, 29, H, W) in [-1, 1]
        rows.setdefault("truth", pass1["truth"][0, :, :frames])
        rows.setdefault("linear blend", pass1["blend"][0, :, :frames])
        rows.setdefault("latent blend", pass1["latent_blend"][0, :, :frames])
        rows[variant] = pass1["model"][0, :, :frames]
    return rows


def _decoder_rows(runs: dict[str, Path], seed: int) -> dict[str, torch.Tensor]:
    from minifusion.data import MovingShapes
    from minifusion.models import Autoencoder
    from minifusion.training.recipes.decoder import reconstruct

    clips = MovingShapes(split="heldout", num_frames=8, frame_skip=1, seed=seed, length=1,
                         backgrounds=("black", "light"))
    truth = clips[0]["video"][None]  # (1, 3, 8, H, W) in [-1, 1]
    models = {}
    for variant, folder in runs.items():
        if variant == "image":
            continue
        models.setdefault("image", Autoencoder.from_pretrained(folder / "autoencoder"))
        models[variant] = Autoencoder.from_pretrained(folder / "video_decoder")
    rows = {"truth": truth[0]}
    for name, model in models.items():
        recon = reconstruct(model, truth).clamp(-1, 1)
        if name == "image":
            rows["image decoder"] = recon[0]
        rows[f"{name} |error| x4"] = ((recon - truth).abs() * 4 - 1).clamp(-1, 1)[0]  # 0 error = black
    return rows


def table_figure(key: str, out: str | Path, *, seed: int | None = None, num_inference_steps: int = 25) -> Path:
    """Write ``OUT/KEY.png`` from the finished runs of ``seed`` (see the module docstring); returns its path.

    ``seed`` None: ``figure_seed(key, out)``, a seed whose runs all hold their weights here.
    """
    from minifusion.eval.ablation_tables import TABLES
    from minifusion.viz import show_frames

    if key not in TABLES:
        raise ValueError(f"table {key!r} is not one of {sorted(TABLES)}")
    spec, out = TABLES[key], Path(out)
    if seed is None:
        seed = figure_seed(key, out)
    runs = _available(out, spec, seed)
    if not runs:
        raise ValueError(f"no finished run of {key} with seed {seed} and its weights under {str(out)!r}; run "
                         f"`python -m minifusion ablate {key}` first")
    missing = sorted(set(_finished(out, spec, seed)) - set(runs))
    if missing:
        raise ValueError(f"the runs {', '.join(missing)} of {key} seed {seed} finished elsewhere: their weights are "
                         "not on this machine (only result.json is committed); pick another seed")
    with torch.no_grad():
        if key == "table1":
            rows = _keyframe_rows(runs, seed, num_inference_steps)
            highlight = None
        elif key == "table2":
            rows = _interpolation_rows(runs, seed, num_inference_steps)
            highlight = [0, 4, 8, 12]
        else:
            rows = _decoder_rows(runs, seed)
            highlight = None
    fig = show_frames(rows, highlight=highlight, frame_size=0.8, value_range=(-1, 1), clip=True)
    fig.suptitle(f"{spec.title} (seed {seed})", fontsize=9)
    path = out / f"{key}.png"
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=72, bbox_inches="tight")
    buffer.seek(0)
    with Image.open(buffer) as image:  # a 128-colour palette keeps the committed file small
        image.convert("RGB").quantize(colors=128).save(path, optimize=True)
    return path


__all__ = ["FIGURE_PROMPTS", "figure_seed", "table_figure"]
