"""The speed and memory targets and the printed tables of ``python -m minifusion bench``.

Each target is a ratio or a measurement with a bound; ``judge`` turns a run's results into
``{"name", "value", "op", "bound", "unit", "met"}`` rows, and ``verdict`` prints one as
``1.31x (target >= 1.25x) met``. In quick mode (tiny sizes, one step) the same rows are printed,
marked as not a measurement.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Target:
    name: str  # what is measured, in words
    section: str  # the results key it reads
    value: Callable[[dict], float | None]  # the figure from that section (None: not measured)
    op: str  # ">=" or "<"
    bound: float
    unit: str  # "x", "s", "GB", "clips/s"


def _peer_ratio(r: dict) -> float | None:
    return r.get("mfu_ratio")


TARGETS = (
    Target("keyframe U-Net MFU / best peer's", "unet_training_step", _peer_ratio, ">=", 1.25, "x"),
    Target("MFI / FusionFrames interpolation time (U-Net work)", "interpolation", lambda r: r["speedup_unet"], ">=",
           3.5, "x"),
    Target("29-frame video, generation time", "end_to_end", lambda r: r["videos"].get("29", {}).get("seconds"), "<",
           2.0, "s"),
    Target("113-frame video, peak resident memory", "end_to_end",
           lambda r: r["videos"].get("113", {}).get("peak_rss_bytes", math.nan) / 1e9, "<", 2.0, "GB"),
    Target("Moving Shapes clips rendered per second", "data", lambda r: r["clips_per_second"], ">=", 500.0, "clips/s"),
    Target("GPU: bf16 autocast training speed / fp32", "cuda",
           lambda r: r["precision"]["training"].get("bfloat16", {}).get("speedup_vs_fp32"), ">=", 1.8, "x"),
)


def _fmt(value: float, unit: str) -> str:
    if unit == "x":
        return f"{value:.2f}x"
    if unit == "clips/s":
        return f"{value:.0f} clips/s"
    return f"{value:.2f} {unit}"


def judge(results: dict) -> list[dict]:
    """One row per target whose section ran (the GPU target only with a GPU)."""
    rows = []
    for t in TARGETS:
        if t.section not in results:
            continue
        value = t.value(results[t.section])
        ok = value is not None and math.isfinite(value)
        met = ok and (value >= t.bound if t.op == ">=" else value < t.bound)
        rows.append({"name": t.name, "value": value if ok else None, "op": t.op, "bound": t.bound, "unit": t.unit,
                     "met": met if ok else None})
    return rows


def verdict(row: dict, quick: bool = False) -> str:
    """``1.31x (target >= 1.25x) met``; ``not measured`` when the value is missing (e.g. no peer ran)."""
    target = f"(target {row['op']} {_fmt(row['bound'], row['unit'])})"
    if row["value"] is None:
        return f"not measured {target}"
    text = f"{_fmt(row['value'], row['unit'])} {target} {'met' if row['met'] else 'NOT met'}"
    return text + (" [quick mode: not a measurement]" if quick else "")


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, rows)])


def _target_line(results: dict, section: str, quick: bool) -> str:
    rows = [r for r in judge(results) if next(t for t in TARGETS if t.name == r["name"]).section == section]
    return "\n".join(f"{r['name']}: {verdict(r, quick)}" for r in rows)


def unet_table(r: dict) -> str:
    rows, notes = [], []
    for name, m in r["models"].items():
        if m["status"] != "ok":
            rows.append([name, "-", "-", "-", "-", m["status"]])
            notes.append(f"  {name}: {m['status']}: {m['reason']}")
            continue
        rows.append([name, f"{m['params'] / 1e6:.2f}M", f"{m['flops_per_step'] / 1e9:.2f}",
                     f"{m['seconds_per_step'] * 1e3:.0f}", f"{m['achieved_gflops']:.1f}", f"{100 * m['mfu']:.1f} %"])
    head = (f"U-Net training step (forward + backward), batch {tuple(r['batch'])} + {r['text_length']} text tokens; "
            f"fp32 matmul peak {r['matmul_peak_gflops']:.1f} GFLOP/s")
    versions = [f"{m['package']}" for m in r["models"].values() if "package" in m]
    lines = [head, table(["model", "params", "GFLOP/step", "ms/step", "GFLOP/s", "MFU"], rows), *notes]
    if versions:
        lines.append("peers from: " + ", ".join(versions))
    return "\n".join(lines)


def interpolation_table(r: dict) -> str:
    rows = [[name, f"{m['params'] / 1e6:.2f}M", f"{m['unet_items_per_call']}", f"{m['flops'] / 1e9:.2f}",
             f"{m['unet_seconds']:.2f}", f"{m['seconds']:.2f}"] for name, m in r["models"].items()]
    head = (f"Interpolation: {r['keyframes'][2]} keyframes -> {r['frames_out']} frames, {r['steps']} DDIM "
            f"step{'s' * (r['steps'] != 1)}, "
            f"context guidance {r['guidance_scale']}")
    ratios = (f"MFI / FusionFrames: U-Net time {r['speedup_unet']:.2f}x, wall time {r['speedup_wall']:.2f}x, "
              f"FLOPs {r['flop_ratio']:.2f}x, U-Net items per call {r['unet_frame_ratio']:.2f}x")
    return "\n".join([head, table(["model", "params", "items/call", "GFLOP/video", "U-Net s", "wall s"], rows), ratios])


def _sampling(v: dict) -> str:
    return f"{v['scheduler']} {v['steps']} + {v['interpolation_scheduler']} {v['interpolation_steps']}"


def end_to_end_table(r: dict) -> str:
    rows = [[f"{n} frames", f"{v['seconds']:.2f}", f"{v['cpu_seconds']:.2f}", f"{v['warm_seconds']:.2f}",
             f"{v['load_seconds']:.2f}", f"{v['peak_rss_bytes'] / 1e9:.2f}",
             f"{v['peak_rss_after_load_bytes'] / 1e9:.2f}", str(v["threads"])] for n, v in r["videos"].items()]
    first = next(iter(r["videos"].values()))
    head = (f"End to end: {r['prompt']!r}, keyframe + interpolation steps per pass {_sampling(first)}, with "
            f"guidance, one fresh process per video ({r['checkpoint']})")
    lines = [head, table(["video", "generate s", "CPU s", "warm s", "load s", "peak RSS GB", "RSS after load GB",
                          "threads"], rows)]
    if r.get("comparison"):
        c0 = r["comparison"][0]
        lines.append(f"29 frames, defaults ({_sampling(c0['default'])}) against {_sampling(c0['baseline'])}, "
                     "each in its own process:")
        lines.append(table(["threads", "defaults s", "baseline s", "speed-up", "CPU s: defaults", "baseline",
                            "warm: defaults s", "baseline s", "speed-up"],
                           [[str(c["threads"]), f"{c['default']['seconds']:.2f}", f"{c['baseline']['seconds']:.2f}",
                             f"{c['speedup']:.2f}x", f"{c['default']['cpu_seconds']:.2f}",
                             f"{c['baseline']['cpu_seconds']:.2f}", f"{c['default']['warm_seconds']:.2f}",
                             f"{c['baseline']['warm_seconds']:.2f}", f"{c['warm_speedup']:.2f}x"]
                            for c in r["comparison"]]))
    return "\n".join(lines)


def data_table(r: dict) -> str:
    head = f"Data: Moving Shapes, {r['num_frames']} frames of {r['size']}x{r['size']}, {r['threads']} thread"
    return head + "\n" + table(["clips/s", "ms/clip", "clips"],
                               [[f"{r['clips_per_second']:.0f}", f"{r['ms_per_clip']:.2f}", str(r["clips"])]])


def _gb(n: int | None) -> str:
    return "-" if n is None else f"{n / 1e9:.2f}"


def cuda_table(r: dict) -> str:
    p = r["precision"]
    lines = [f"GPU ({p['device_name']}): keyframe U-Net {p['params'] / 1e6:.1f}M params, widths "
             f"{tuple(p['preset']['block_out_channels'])}, batch {tuple(p['batch'])}"]
    rows = []
    for kind in ("training", "sampling"):
        for precision, m in p[kind].items():
            rows.append([kind, precision, f"{m['seconds'] * 1e3:.1f}", f"{m['tflops']:.2f}",
                         f"{p['matmul_peak_tflops'][precision]:.1f}", f"{m['speedup_vs_fp32']:.2f}x",
                         _gb(m["peak_memory_bytes"])])
    lines.append(table(["step", "precision", "ms", "TFLOP/s", "matmul peak TFLOP/s", "vs fp32", "peak GB"], rows))
    c = p.get("compile")
    if c is not None:
        lines.append(f"torch.compile ({c['precision']} training step): " + (
            f"{c['speedup']:.2f}x over eager, compile {c['compile_seconds']:.1f} s -> "
            f"{'helps' if c['helps'] else 'does not help'}" if c["status"] == "ok" else f"failed: {c['reason']}"))
    if "pipeline" in r:
        q = r["pipeline"]
        fp32, amp = q["float32"], q["autocast"]
        lines.append(f"pipeline, 29 frames: fp32 {fp32['seconds']:.2f} s ({_gb(fp32['peak_memory_bytes'])} GB), "
                     f"autocast {amp['seconds']:.2f} s ({_gb(amp['peak_memory_bytes'])} GB), {q['speedup']:.2f}x")
    return "\n".join(lines)


SECTIONS = (
    ("unet_training_step", unet_table),
    ("interpolation", interpolation_table),
    ("end_to_end", end_to_end_table),
    ("data", data_table),
    ("cuda", cuda_table),
)


def full_report(results: dict) -> str:
    """Every section that ran, each followed by its targets; a summary of all targets at the end."""
    quick = results["meta"]["quick"]
    parts = []
    for key, fmt in SECTIONS:
        if key in results:
            lines = [fmt(results[key])]
            targets = _target_line(results, key, quick)
            if targets:
                lines.append(targets)
            parts.append("\n".join(lines))
    rows = [[r["name"], verdict(r, quick)] for r in results["targets"]]
    parts.append("Targets (2-core CPU; GPU where present)\n" + table(["target", "result"], rows))
    return "\n\n".join(parts)
