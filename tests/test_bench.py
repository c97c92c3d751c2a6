"""``python -m minifusion bench``: the quick mode runs every section and writes sane JSON; FLOPs are right.

No timing asserts: the quick mode's sizes are tiny and the machine is shared; these tests check that
every code path runs and that the figures are consistent, not how fast anything is.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
import bench_cuda  # noqa: E402
import bench_report as report  # noqa: E402
import bench_unet  # noqa: E402
from bench_measure import count_flops  # noqa: E402

from minifusion import cli  # noqa: E402
from minifusion.models import KeyframeUNet  # noqa: E402
from minifusion.nn import AttentionBlock, temporal  # noqa: E402

SECTIONS = ("unet_training_step", "interpolation", "end_to_end", "data")


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """One quick run through the CLI function: (exit code, printed tables, JSON written)."""
    path = tmp_path_factory.mktemp("bench") / "bench.json"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main(["bench", "--quick", "--threads", "1", "--json", str(path)])
    return code, out.getvalue(), json.loads(path.read_text())


def test_quick_run_writes_every_section(quick):
    code, printed, results = quick
    assert code == 0
    assert set(SECTIONS) | {"meta", "targets"} <= set(results)
    assert results["meta"]["quick"] is True and results["meta"]["threads"] == 1
    if not torch.cuda.is_available():
        assert "cuda" not in results
    for header in ("U-Net training step", "Interpolation:", "End to end:", "Data:", "Targets"):
        assert header in printed
    assert "(target >= 1.25x)" in printed and "(target < 2.00 s)" in printed


def test_unet_section_has_flops_times_and_peers(quick):
    r = quick[2]["unet_training_step"]
    assert r["batch"] == [1, 4, 2, 16, 16] and r["matmul_peak_gflops"] > 0
    ours = r["models"]["minifusion KeyframeUNet"]
    assert ours["status"] == "ok" and ours["flops_per_step"] > 0 and ours["seconds_per_step"] > 0
    assert 0 < ours["mfu"] and math.isfinite(ours["mfu"])
    for name, m in r["models"].items():
        assert m["status"] in ("ok", "unavailable", "skipped"), name
        if m["status"] != "ok":
            assert m["reason"]  # says why, e.g. "not installed (pip install 'minifusion[bench]')"
        else:
            assert m["flops_per_step"] > 0 and math.isfinite(m["mfu"])
    try:
        import diffusers  # noqa: F401
    except ImportError:
        pass
    else:  # installed here (the bench extra): the side-by-side must have run
        assert r["models"]["diffusers UNet3DConditionModel"]["status"] == "ok"
    if r["best_peer"] is not None:
        assert r["mfu_ratio"] == pytest.approx(ours["mfu"] / r["models"][r["best_peer"]]["mfu"])


def test_interpolation_section_counts_the_unet_work(quick):
    r = quick[2]["interpolation"]
    assert r["frames_out"] == 4 * r["keyframes"][2] - 3
    ff, mfi = r["models"]["FusionFrames InterpolationUNet"], r["models"]["MFI MaskedInterpolationUNet"]
    assert ff["frames_out"] == mfi["frames_out"] == r["frames_out"]
    assert ff["unet_calls"] == mfi["unet_calls"] == r["steps"]  # guided and unguided in one call
    assert 0 < ff["unet_seconds"] <= ff["seconds"] and 0 < mfi["unet_seconds"] <= mfi["seconds"]
    k = r["keyframes"][2]
    assert r["unet_frame_ratio"] == pytest.approx((4 * k - 3) / (k - 1))
    assert mfi["flops"] > ff["flops"] > 0  # MFI runs the U-Net on every frame
    for key in ("speedup_wall", "speedup_unet", "flop_ratio"):
        assert math.isfinite(r[key]) and r[key] > 0


def test_end_to_end_section_ran_each_length_in_its_own_process(quick):
    r = quick[2]["end_to_end"]
    assert r["steps"] == r["interpolation_steps"] == 2
    for n in (29, 113):
        v = r["videos"][str(n)]
        assert v["shape"] == [1, n, 64, 64, 3] and v["finite"]
        assert v["seconds"] > 0 and v["peak_rss_bytes"] >= v["peak_rss_after_load_bytes"] > 0
        assert v["threads"] == 1  # --threads reaches the child process
        assert v["warm_seconds"] > 0 and v["cpu_seconds"] > 0 and v["scheduler"] and v["interpolation_scheduler"]
    [c] = r["comparison"]  # the defaults next to the older DDIM sampling, in one run (quick: one thread)
    assert c["threads"] == 1 and c["baseline"]["scheduler"] == "ddim" and c["baseline"]["steps"] == 2
    assert c["speedup"] == c["baseline"]["seconds"] / c["default"]["seconds"]
    assert "against ddim 2 + ddim 2" in report.end_to_end_table(r)


def test_data_and_targets(quick):
    results = quick[2]
    assert results["data"]["clips_per_second"] > 0 and results["data"]["threads"] == 1
    names = [t["name"] for t in results["targets"]]
    assert len(names) == 5 + ("cuda" in results)
    for t in results["targets"]:
        if t["value"] is None:  # only the peer ratio may be missing (no peer ran)
            assert t["name"].startswith("keyframe U-Net MFU") and t["met"] is None
        else:
            assert math.isfinite(t["value"]) and isinstance(t["met"], bool)


def test_without_peers_the_ratio_is_not_measured():
    r = bench_unet.bench_unet_vs_peers(batch=(1, 4, 1, 16, 16), steps=1, warmup=0, matmul_size=64, peers=False)
    assert [m["status"] for m in r["models"].values()] == ["ok", "skipped", "skipped"]
    assert r["best_peer"] is None and r["mfu_ratio"] is None
    row = report.judge({"unet_training_step": r})[0]
    assert row["value"] is None and report.verdict(row).startswith("not measured")
    assert "skipped: --no-peers" in report.unet_table(r)


def test_verdict_reads_like_the_targets():
    row = {"value": 1.31, "op": ">=", "bound": 1.25, "unit": "x", "met": True}
    assert report.verdict(row) == "1.31x (target >= 1.25x) met"
    assert report.verdict({**row, "value": 1.1, "met": False}) == "1.10x (target >= 1.25x) NOT met"
    assert report.verdict({**row, "value": None, "met": None}) == "not measured (target >= 1.25x)"
    assert report.verdict(row, quick=True).endswith("[quick mode: not a measurement]")


def _layer_flops(model: torch.nn.Module, run, monkeypatch) -> int:
    """Forward FLOPs from the layer shapes: 2 x MACs of every (transposed) conv and linear layer, plus attention."""
    total = 0

    def hook(module, inputs, output):
        nonlocal total
        if isinstance(module, torch.nn.Linear):
            total += 2 * output.numel() * module.in_features
        elif isinstance(module, torch.nn.modules.conv._ConvTransposeNd):  # every input value meets the whole kernel
            total += 2 * inputs[0].numel() * (module.out_channels // module.groups) * math.prod(module.kernel_size)
        else:  # Conv1d / Conv2d / Conv3d: every output value is a dot product over in_channels x kernel
            total += 2 * output.numel() * (module.in_channels // module.groups) * math.prod(module.kernel_size)

    original = F.scaled_dot_product_attention

    def attention(q, k, v, **kwargs):  # two matrix products per head: Q K^T and (weights) V
        nonlocal total
        total += 2 * q.shape[:-2].numel() * q.shape[-2] * k.shape[-2] * (q.shape[-1] + v.shape[-1])
        return original(q, k, v, **kwargs)

    monkeypatch.setattr(F, "scaled_dot_product_attention", attention)
    # the fast paths that bypass a layer's forward (tested equal to it) run through the layer here
    monkeypatch.setattr(temporal, "conv_over_frames", lambda conv, x: conv(x))
    monkeypatch.setattr(AttentionBlock, "feed_forward_tokens", lambda block, x: block.feed_forward(x))
    layers = (torch.nn.Linear, torch.nn.modules.conv._ConvNd)
    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, layers)]
    try:
        run()
    finally:
        for h in handles:
            h.remove()
        monkeypatch.setattr(F, "scaled_dot_product_attention", original)
    return total


def test_unet_flop_count_equals_a_count_from_layer_shapes(monkeypatch):
    model = KeyframeUNet().train()
    inputs = bench_unet.training_inputs((2, 4, 2, 16, 16))

    def forward():
        return model(inputs["sample"], inputs["timestep"], inputs["encoder_hidden_states"],
                     inputs["encoder_attention_mask"])

    with torch.no_grad():
        counted = count_flops(forward)
        assert counted == _layer_flops(model, forward, monkeypatch)
    step = count_flops(bench_unet.keyframe_unet_step(model, inputs))
    assert 2 * counted < step < 3 * counted  # backward: gradients of inputs and weights, ~2x forward


def test_unet_flops_scale_linearly_with_batch():
    model = KeyframeUNet().train()
    one, two = (count_flops(bench_unet.keyframe_unet_step(model, bench_unet.training_inputs((b, 4, 2, 16, 16))))
                for b in (1, 2))
    assert two == 2 * one


def test_gpu_code_paths_run_on_the_cpu():
    """The CUDA section's functions with device="cpu" (no compile): the same code, tiny preset."""
    r = bench_cuda.bench_precision(preset=bench_cuda.TINY_PRESET, batch=bench_cuda.TINY_BATCH, device="cpu",
                                   precisions=["float32", "bfloat16"], steps=1, warmup=0, compile=False)
    for kind in ("training", "sampling"):
        assert set(r[kind]) == {"float32", "bfloat16"}
        assert r[kind]["float32"]["speedup_vs_fp32"] == 1.0 and r[kind]["bfloat16"]["seconds"] > 0
        assert r[kind]["float32"]["peak_memory_bytes"] is None  # GPU memory only
    assert r["flops"]["training"] > r["flops"]["sampling"] > 0
    from minifusion.pipelines import pretrained

    pipeline = bench_cuda.bench_pipeline_autocast(pretrained(), device="cpu", steps=1)
    assert pipeline["float32"]["seconds"] > 0 and math.isfinite(pipeline["speedup"])
    printed = report.cuda_table({"precision": r, "pipeline": pipeline})
    assert "training" in printed and "bfloat16" in printed and "pipeline, 29 frames" in printed
    rows = report.judge({"cuda": {"precision": r}})
    assert [t["name"] for t in rows] == ["GPU: bf16 autocast training speed / fp32"]


def test_help_explains_every_figure(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["bench", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for word in ("--json", "--quick", "--no-peers", "--checkpoint", "--threads", "MFU", "UNet3DConditionModel",
                 "Unet3D", "peak resident memory", "clips", "torch.compile", "targets"):
        assert word in out, word


@pytest.mark.parametrize("args, named", [
    (["--threads", "0"], "'0'"),
    (["--threads", "two"], "'two'"),
    (["--checkpoint", "/no/such/folder"], "/no/such/folder"),
    (["--json", "/no/such/folder/bench.json"], "/no/such/folder"),
])
def test_bad_arguments_are_a_clear_error(args, named, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["bench", *args])
    assert e.value.code == 2
    assert named in capsys.readouterr().err


def test_outside_a_checkout_is_a_clear_error(tmp_path, monkeypatch, capsys):
    from minifusion.cli import bench as bench_command

    monkeypatch.setattr(bench_command, "_benchmarks_dir", lambda: tmp_path / "benchmarks")
    assert cli.main(["bench", "--quick"]) == 2
    err = capsys.readouterr().err
    assert "source checkout" in err and str(tmp_path / "benchmarks") in err
