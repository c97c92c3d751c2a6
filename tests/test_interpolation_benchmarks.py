"""The interpolation benchmarks run end to end on the shipped pipeline and print what their docs cite."""

from __future__ import annotations

import json

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
