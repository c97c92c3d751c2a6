"""The ablation runner: cached (variant, seed) runs, resumable tables, mean and spread, clear errors."""

from __future__ import annotations

import dataclasses
import json
import statistics

import pytest
import torch

from minifusion.eval.ablation import (
    AblationOptions,
    Column,
    TableSpec,
    run_folder,
    run_table,
    summarise,
    train_seconds_per_step,
    write_table,
)
from minifusion.eval.ablation_tables import TABLES


def _spec(calls: list, fail_on: tuple | None = None) -> TableSpec:
    def evaluate(folder, variant, seed, options):
        if (variant, seed) == fail_on:
            raise RuntimeError("interrupted")
        calls.append((variant, seed))
        return {"score": {"a": 1.0, "b": 2.0}[variant] + seed, "other": None}

    return TableSpec(key="tableX", title="a test table", paper="the paper says b > a", variants=("a", "b"),
                     stage_of=lambda v: None, train_kwargs=lambda v: {}, config_of=lambda v: {}, links=("unet",),
                     default_steps=5, columns=(Column("score", "score", "{:.2f}", "higher"),),
                     evaluate=evaluate)


@pytest.fixture
def base(tmp_path):
    (tmp_path / "base" / "unet").mkdir(parents=True)
    return tmp_path / "base"


def test_table_is_the_mean_and_spread_over_seeds_and_runs_are_cached(tmp_path, base):
    calls: list = []
    path = run_table(_spec(calls), out=tmp_path / "out", base=base, seeds=3, progress=False, command="cmd")
    assert sorted(calls) == [(v, s) for v in "ab" for s in range(3)]
    text = path.read_text()
    # a: scores 1, 2, 3 -> mean 2, sample std 1; b: 2, 3, 4 -> 3 +- 1
    assert "| a | 2.00 ± 1.00 |" in text and "| b | 3.00 ± 1.00 |" in text and "`cmd`" in text
    assert "Not run yet" not in text
    table = json.loads((tmp_path / "out" / "tableX.json").read_text())
    assert table["rows"]["b"]["score"] == {"mean": 3.0, "std": 1.0, "n": 3}
    assert (tmp_path / "out" / "tableX" / "a" / "seed_0" / "unet").is_symlink()
    calls.clear()  # a second sitting re-uses every finished run
    run_table(_spec(calls), out=tmp_path / "out", base=base, seeds=3, progress=False)
    assert calls == []
    run_table(_spec(calls), out=tmp_path / "out", base=base, seeds=3, steps=6, progress=False)
    assert len(calls) == 6  # another budget is another experiment
    run_table(_spec(calls), out=tmp_path / "out", base=base, seeds=3, steps=6, progress=False,
              options=AblationOptions(num_videos=4))
    assert len(calls) == 12  # and so are other evaluation options


def test_an_interrupted_table_keeps_its_finished_runs_and_lists_the_missing(tmp_path, base):
    calls: list = []
    with pytest.raises(RuntimeError, match="interrupted"):
        run_table(_spec(calls, fail_on=("b", 1)), out=tmp_path / "out", base=base, seeds=2, progress=False)
    assert calls == [("a", 0), ("b", 0), ("a", 1)]
    from minifusion.eval.ablation import write_table

    text = write_table(_spec([]), out=tmp_path / "out", steps=5, seeds=2, options=AblationOptions()).read_text()
    assert "| b | 2.00 (1 seed) |" in text and "Not run yet (1): b seed 1." in text
    run_table(_spec(calls), out=tmp_path / "out", base=base, seeds=2, progress=False)
    assert calls[-1] == ("b", 1) and len(calls) == 4  # only the missing run


def test_summary_matches_the_statistics_module_and_skips_missing_values():
    assert summarise([1.0, 2.0, 4.0]) == {"mean": statistics.fmean([1, 2, 4]), "std": statistics.stdev([1, 2, 4]),
                                          "n": 3}
    assert summarise([None, 5.0]) == {"mean": 5.0, "std": None, "n": 1}
    assert summarise([]) == {"mean": None, "std": None, "n": 0}


def test_bad_arguments_name_the_value(tmp_path, base):
    spec = _spec([])
    with pytest.raises(ValueError, match="steps 0 is not allowed; it must be an integer >= 1"):
        run_table(spec, out=tmp_path, base=base, steps=0)
    with pytest.raises(ValueError, match="seeds 0 is not allowed; it must be an integer >= 1"):
        run_table(spec, out=tmp_path, base=base, seeds=0)
    with pytest.raises(ValueError, match=r"variants \['c'\] are not in tableX; allowed: \['a', 'b'\]"):
        run_table(spec, out=tmp_path, base=base, variants=("c",))
    with pytest.raises(ValueError, match="has no 'unet'"):
        run_table(spec, out=tmp_path, base=tmp_path / "empty", progress=False)


def test_the_three_tables_cover_the_papers_variants():
    assert TABLES["table1"].variants == ("conv1d_attn1d_layers", "conv1d_attn1d_blocks", "conv3d_attn1d_blocks",
                                         "conv1d_attn3d_blocks")
    assert {TABLES["table2"].stage_of(v) for v in TABLES["table2"].variants} == {"interpolation", "mfi", None}
    assert TABLES["table2"].stage_of("latent_blend") is None  # the baseline row: nothing to train
    table3 = TABLES["table3"]
    assert table3.stage_of("image") is None and {table3.stage_of(v) for v in table3.variants[1:]} == {"decoder"}
    for spec in TABLES.values():
        assert dataclasses.replace(spec).key.startswith("table")


def test_ablate_command_line_errors(tmp_path, capsys):
    from minifusion import cli

    with pytest.raises(SystemExit) as exit_info:
        cli.main(["ablate", "table9"])
    assert exit_info.value.code == 2 and "invalid choice: 'table9'" in capsys.readouterr().err
    assert cli.main(["ablate", "table3", "--base", str(tmp_path / "nope"), "--out", str(tmp_path)]) == 2
    assert f"base pipeline folder '{tmp_path / 'nope'}' does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["ablate", "table1", "--seeds", "0"])
    assert "'0' must be an integer >= 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["ablate", "table1", "--figure", "--figure-seed", "-1"])
    assert "'-1' must be an integer >= 0" in capsys.readouterr().err
    assert cli.main(["ablate", "table3", "--out", str(tmp_path), "--table-only", "--figure-seed", "1"]) == 2
    assert "--figure-seed 1 draws the figure of --figure; give --figure too" in capsys.readouterr().err


def test_training_cost_is_the_median_of_the_logged_rows_and_lands_in_the_table(tmp_path, base):
    calls: list = []
    spec = dataclasses.replace(_spec(calls), stage_of=lambda v: "stage")
    for variant, speeds in (("a", (2.0, 0.1, 2.0)), ("b", (0.5, 0.5, 5.0))):  # one slow / fast outlier each
        log = run_folder(tmp_path / "out", spec, variant, 0) / "runs" / "stage" / "log.csv"
        log.parent.mkdir(parents=True)
        log.write_text("step,loss,steps_per_sec\n" + "".join(f"{10 * i},0.1,{v}\n" for i, v in enumerate(speeds)))
        (log.parent / "metrics.json").write_text(json.dumps({"step": 5}))  # finished: nothing is trained
    assert train_seconds_per_step(run_folder(tmp_path / "out", spec, "a", 0), "stage") == pytest.approx(0.5)
    assert train_seconds_per_step(run_folder(tmp_path / "out", spec, "a", 0), None) is None
    run_table(spec, out=tmp_path / "out", base=base, seeds=1, progress=False)
    table = json.loads((tmp_path / "out" / "tableX.json").read_text())
    assert table["rows"]["a"]["train_seconds_per_step"]["mean"] == pytest.approx(0.5)
    assert table["rows"]["b"]["train_seconds_per_step"]["mean"] == pytest.approx(2.0)
    assert "a 0.50 (1 seed), b 2.00 (1 seed)" in (tmp_path / "out" / "tableX.md").read_text()
    write_table(spec, out=tmp_path / "out", steps=5, seeds=1, options=AblationOptions())  # re-render: same figures
    assert json.loads((tmp_path / "out" / "tableX.json").read_text())["rows"] == table["rows"]


def test_table_only_renders_finished_runs_without_training(tmp_path, monkeypatch, capsys):
    from minifusion import cli
    from minifusion.eval import ablation

    def refuse(*args, **kwargs):
        raise AssertionError("--table-only must not train or evaluate")

    monkeypatch.setattr(ablation, "run_one", refuse)
    spec = TABLES["table3"]
    options = AblationOptions()
    folder = run_folder(tmp_path, spec, "conv1d", 0)
    folder.mkdir(parents=True)
    metrics = {"psnr_db": 35.0, "ssim": 0.95, "flicker_ratio": 1.1, "parameters": 10, "trainable_parameters": 2}
    (folder / "result.json").write_text(json.dumps({"table": "table3", "variant": "conv1d", "seed": 0, "steps": 600,
                                                    "options": options.__dict__, "metrics": metrics}))
    (tmp_path / "table3.json").write_text(json.dumps({"command": "python -m minifusion ablate table3 --seeds 3",
                                                      "hardware": "the machine that ran it"}))
    assert cli.main(["ablate", "table3", "--out", str(tmp_path), "--table-only"]) == 0
    text = (tmp_path / "table3.md").read_text()
    assert "| conv1d | 35.00 (1 seed) |" in text and "the machine that ran it" in text
    assert "`python -m minifusion ablate table3 --seeds 3`" in text and "Not run yet (14)" in text


def test_figure_needs_finished_runs_and_names_the_table(tmp_path):
    from minifusion.eval.ablation_figures import table_figure

    with pytest.raises(ValueError, match="table9"):
        table_figure("table9", tmp_path)
    with pytest.raises(ValueError, match="no seed of table3 .* has its runs' weights on this machine"):
        table_figure("table3", tmp_path)
    with pytest.raises(ValueError, match="no finished run of table3 with seed 0"):
        table_figure("table3", tmp_path, seed=0)


def _finished_run(out, variant, seed, weights):
    folder = run_folder(out, TABLES["table3"], variant, seed)
    folder.mkdir(parents=True)
    (folder / "result.json").write_text("{}")
    (folder / "autoencoder").symlink_to(out)  # a link to the base is not the run's own weights
    if weights:
        (folder / "video_decoder").mkdir()
        (folder / "video_decoder" / "config.json").write_text("{}")


def test_figure_draws_a_seed_whose_weights_are_on_this_machine(tmp_path):
    from minifusion.eval.ablation_figures import figure_seed, table_figure

    # seed 0 finished elsewhere (only result.json came with the clone); seed 1 is partly here, seed 2 whole
    for variant in ("conv1d", "conv3d", "image"):
        _finished_run(tmp_path, variant, 0, weights=False)
        _finished_run(tmp_path, variant, 2, weights=True)
    _finished_run(tmp_path, "conv1d", 1, weights=True)
    assert figure_seed("table3", tmp_path) == 2  # the most runs, all with weights
    with pytest.raises(ValueError, match="conv1d, conv3d of table3 seed 0 finished elsewhere"):
        table_figure("table3", tmp_path, seed=0)
    _finished_run(tmp_path / "other", "conv1d", 0, weights=False)
    with pytest.raises(ValueError, match="no seed of table3 .* has its runs' weights on this machine"):
        figure_seed("table3", tmp_path / "other")


def test_table3_figure_draws_every_decoder_of_the_seed(tmp_path):
    from PIL import Image

    from minifusion.eval.ablation_figures import table_figure
    from minifusion.models import Autoencoder
    from minifusion.training.recipes.decoder import build_video_decoder

    torch.manual_seed(0)
    image = Autoencoder()
    spec = TABLES["table3"]
    for variant in ("conv1d", "image"):
        folder = run_folder(tmp_path, spec, variant, 0)
        folder.mkdir(parents=True)
        (folder / "result.json").write_text("{}")
    image.save_pretrained(run_folder(tmp_path, spec, "conv1d", 0) / "autoencoder")
    build_video_decoder(image, "conv1d").save_pretrained(run_folder(tmp_path, spec, "conv1d", 0) / "video_decoder")
    path = table_figure("table3", tmp_path)
    assert path == tmp_path / "table3.png"
    width, height = Image.open(path).size
    assert width > 300 and height > 200  # truth, image decoder, and 2 error rows


def test_a_new_evaluation_version_re_evaluates_finished_runs(tmp_path, base):
    calls: list = []
    run_table(_spec(calls), out=tmp_path / "out", base=base, seeds=1, progress=False)
    assert len(calls) == 2
    run_table(dataclasses.replace(_spec(calls), eval_version=2), out=tmp_path / "out", base=base, seeds=1,
              progress=False)
    assert len(calls) == 4  # both runs evaluated again with the changed evaluation
    result = json.loads((run_folder(tmp_path / "out", _spec([]), "a", 0) / "result.json").read_text())
    assert result["eval_version"] == 2
