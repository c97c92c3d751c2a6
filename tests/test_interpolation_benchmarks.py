"""The interpolation benchmarks run end to end on the shipped pipeline and print what their docs cite."""

from __future__ import annotations

import json

import pytest

from benchmarks import bench_interpolation_quality, interpolation_init


def test_init_benchmark_prints_every_design_and_the_middle_design_starts_worse_on_the_outer_frames(capsys):
    interpolation_init.main(["--clips", "1"])
    rows = {line[:14].strip(): line for line in capsys.readouterr().out.splitlines()[2:]}
    assert list(rows) == ["middle", "slots c=0", "slots c=0.5", "slots c=1", "groups c=0", "groups c=0.5"]
    frames = {name: [float(v) for v in line.split("   ")[-1].split(" / ")] for name, line in rows.items()}
    outer_middle, mid_middle = max(frames["middle"][0], frames["middle"][2]), frames["middle"][1]
    assert mid_middle < outer_middle  # only the middle slot has the T2I input path
    assert max(frames["slots c=0"]) - min(frames["slots c=0"]) < 0.2 * max(frames["slots c=0"])  # symmetric start


def test_quality_benchmark_prints_the_table_and_the_bars(tmp_path, capsys):
    path = tmp_path / "i.json"
    assert bench_interpolation_quality.main(["--clips", "1", "--two-shape-clips", "0", "--steps", "1",
                                             "--threads", "1", "--guidance", "1.5", "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert "latent blend" in out and "autoencoder (ceiling)" in out and "bars passed" in out
    report = json.loads(path.read_text())
    assert report["guidance_scale"] == 1.5
    assert report["pass1"]["by_position"]["model"]["middle"]["num_frames"] == 7  # one clip: 7 gaps, 1 middle frame each
    assert {b["name"] for b in report["bars"]} and all(isinstance(b["passed"], bool) for b in report["bars"])


def test_sampler_grid_parses_variants_and_names_what_is_allowed():
    from benchmarks.interpolation_samplers import parse_variant

    assert parse_variant("dpm-sde-trailing-5-1.5") == {"scheduler": "dpm-sde", "spacing": "trailing", "steps": 5,
                                                       "guidance": 1.5, "strength": 1.0}
    assert parse_variant("dpm-leading-10-1") == {"scheduler": "dpm", "spacing": "leading", "steps": 10, "guidance": 1.0,
                                                 "strength": 1.0}
    assert parse_variant("ddim-trailing-5-1.5@0.8")["strength"] == 0.8
    for bad, message in (("euler-trailing-5-1.5", "SCHEDULER-SPACING"), ("ddim-uniform-5-1.5", "spacing 'uniform'"),
                         ("ddim-trailing-0-1.5", "steps must be >= 1"), ("ddim-trailing-5-1.5@1.2", "STRENGTH must"),
                         ("ddim-trailing-5-1.5@0.05", "keep a step"), ("ddim-trailing-five-1.5", "must be numbers"),
                         ("ddim-trailing-5-1.5@x", "must be numbers")):
        with pytest.raises(ValueError, match=message):
            parse_variant(bad)


def test_sampler_grid_prints_a_row_per_variant_and_the_baselines(tmp_path, capsys):
    from benchmarks import interpolation_samplers

    path = tmp_path / "s.json"
    assert interpolation_samplers.main(["--clips", "1", "--threads", "1", "--variants",
                                        "dpm-sde-trailing-2-1.5,ddim-trailing-2-1.0@0.5", "--json", str(path)]) == 0
    out = capsys.readouterr().out
    for name in ("dpm-sde-trailing-2-1.5", "ddim-trailing-2-1.0@0.5", "latent blend", "autoencoder (ceiling)"):
        assert name in out
    report = json.loads(path.read_text())["variants"]
    assert report["ddim-trailing-2-1.0@0.5"]["variant"]["strength"] == 0.5 and len(report["dpm-sde-trailing-2-1.5"]["bars"]) == 9
