"""benchmarks/motion_levers.py: the clips of each case are what its docstring says (one batch of four
directions; the simple case's paths centred), and its command line refuses what it cannot do."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import motion_levers  # noqa: E402

from minifusion.eval import motion_direction  # noqa: E402


@pytest.mark.parametrize("case", ["overfit", "simple", "starts"])
def test_clips_move_the_way_their_captions_say(case):
    videos, captions = motion_levers.render_clips(case, 8, 0, "red", "circle")
    assert videos.shape == ((4 if case == "overfit" else 8), 3, 8, 64, 64)
    assert [c.rsplit(" ", 1)[1] for c in captions[:4]] == list(motion_levers.AXIS)
    found = motion_direction((videos + 1) / 2, value_range=(0.0, 1.0))
    assert found == [c.rsplit(" ", 1)[1] for c in captions]


def test_simple_case_paths_are_centred_and_alike_per_direction():
    videos, captions = motion_levers.render_clips("simple", 8, 0, "red", "circle")
    red = (videos[:, 0] > 0) & (videos[:, 1] < 0)  # (N, K, H, W)
    grid = torch.arange(64.0)
    ys = (red.float().sum(-1) * grid).sum(-1) / red.float().sum((-1, -2))  # (N, K) row of the centre
    xs = (red.float().sum(-2) * grid).sum(-1) / red.float().sum((-1, -2))
    assert torch.allclose(xs.mean(1), torch.full((8,), 31.5), atol=1.5)  # the path's middle is the frame's
    assert torch.allclose(ys.mean(1), torch.full((8,), 31.5), atol=1.5)
    # same direction, nearly the same path (size and speed jitter a little): the word decides every keyframe
    assert (xs[0] - xs[4]).abs().max() < 3 and (ys[0] - ys[4]).abs().max() < 3


def test_starts_case_is_the_simple_case_with_random_starts():
    videos, captions = motion_levers.render_clips("starts", 8, 0, "red", "circle")
    assert set(captions) == {f"a red circle moves {d}" for d in motion_levers.AXIS}
    red = (videos[:, 0] > 0) & (videos[:, 1] < 0)  # (N, K, H, W)
    grid = torch.arange(64.0)
    xs = (red.float().sum(-2) * grid).sum(-1) / red.float().sum((-1, -2))  # (N, K) column of the centre
    ys = (red.float().sum(-1) * grid).sum(-1) / red.float().sum((-1, -2))
    # same direction, different places: clips 0 and 4 both move right, on paths at least a few pixels apart
    assert max((xs[0] - xs[4]).abs().max(), (ys[0] - ys[4]).abs().max()) > 3


def test_command_line_errors(tmp_path):
    with pytest.raises(SystemExit, match="2"):
        motion_levers.main(["--ablate", "motion-bias", "--out", str(tmp_path)])  # --ablate needs --inspect
    with pytest.raises(SystemExit):
        motion_levers.main(["--plot", str(tmp_path / "x.png")])  # no run folders
    with pytest.raises(SystemExit, match="no levers.csv"):
        motion_levers.main(["--plot", str(tmp_path / "x.png"), str(tmp_path)])
    with pytest.raises(SystemExit):
        motion_levers.main([])  # neither --out nor --plot


def test_plot_draws_every_run_and_leaves_no_figure_open(tmp_path):
    import matplotlib.pyplot as plt

    for name in ("a", "b"):
        run = tmp_path / name
        run.mkdir()
        rows = [{"step": s, "direction_accuracy": d, "flip_ratio_950": 1.0, "flip_ratio_700": r}
                for s, d, r in ((100, 0.0, 1.0), (200, 0.5, 1.2))]
        import csv

        with (run / "levers.csv").open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    assert motion_levers.main(["--plot", str(tmp_path / "curves.png"), str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    assert (tmp_path / "curves.png").stat().st_size > 0
    assert plt.get_fignums() == []


def _build(spatial_params, lora_rank=0, temporal_text_size=0, train_spatial=True):
    import argparse

    from minifusion.models import UNet

    unet = UNet.from_pretrained(Path(motion_levers.__file__).resolve().parents[1] / "data_samples" / "checkpoints"
                                / "t2i-text-only" / "unet")
    args = argparse.Namespace(seed=0, temporal="conv1d_attn1d_blocks", spatiotemporal_size=0,
                              train_spatial=train_spatial, spatial_params=spatial_params, lora_rank=lora_rank,
                              temporal_text_size=temporal_text_size, text_per_frame=False,
                              motion_bias=False)
    return motion_levers.build_model(unet, args)


@pytest.mark.parametrize("spatial_params", ["all", "attention", "cross-attention"])
def test_train_spatial_unfreezes_every_t2i_weight_or_only_the_chosen_attention(spatial_params):
    from minifusion.nn import AttentionBlock

    model = _build(spatial_params)
    temporal = set(map(id, model.temporal_parameters()))
    spatial = {name: p.requires_grad for name, p in model.named_parameters() if id(p) not in temporal}
    assert all(p.requires_grad for p in model.temporal_parameters())
    if spatial_params == "all":
        assert all(spatial.values())
        return
    blocks = {name: m.is_cross_attention for name, m in model.named_modules() if isinstance(m, AttentionBlock)}
    assert set(blocks.values()) == {True, False}  # the T2I U-Net has both kinds: the test can tell them apart
    trained = {name for name, on in spatial.items() if on}
    owners = {name.split(".attention.")[0] for name in trained}
    assert owners <= set(blocks) and {name.rsplit(".", 2)[-2] for name in trained} >= {"to_q", "to_k", "to_v"}
    wanted = {n for n, cross in blocks.items() if cross or spatial_params == "attention"}
    assert owners == wanted
    assert not spatial["conv_in.weight"]


def test_temporal_text_lever_adds_trainable_text_attention_at_the_small_levels_only():
    model = _build("all", temporal_text_size=8, train_spatial=False)
    texts = sorted(k for k, b in model.temporal_blocks.items() if b.takes_text)
    assert texts == ["down_1_2", "down_1_5", "down_2_2", "down_2_5", "up_1_2", "up_1_5", "up_2_2", "up_2_5"]
    trained = {n for n, p in model.named_parameters() if p.requires_grad}
    assert {f"temporal_blocks.{k}.branch.to_k.weight" for k in texts} <= trained
    assert not any(n.startswith(("down_blocks.", "up_blocks.")) for n in trained)  # the T2I weights stay frozen
    at_4 = _build("all", temporal_text_size=4, train_spatial=False).temporal_blocks
    assert sorted(k for k, b in at_4.items() if b.takes_text) == ["down_2_2", "down_2_5", "up_2_2", "up_2_5"]


def test_lora_lever_starts_as_the_t2i_layers_and_trains_only_its_factors():
    from minifusion.nn.lora import LoRALinear

    plain, lora = _build("cross-attention"), _build("cross-attention", lora_rank=4)
    wrapped = {name for name, m in lora.named_modules() if isinstance(m, LoRALinear)}
    assert len(wrapped) == 4 * 8  # q, k, v, out of the 8 cross-attention blocks
    temporal = set(map(id, lora.temporal_parameters()))
    spatial_trained = {name for name, p in lora.named_parameters() if p.requires_grad and id(p) not in temporal}
    assert spatial_trained and all(name.endswith((".down.weight", ".up.weight")) for name in spatial_trained)
    x, t = torch.randn(1, plain.config.in_channels, 8, 8, 8), torch.tensor([500])
    text = torch.randn(1, 4, plain.config.cross_attention_dim)
    lora.load_state_dict(plain.state_dict(), strict=False)  # the same temporal parts; LoRA's B is zero
    with torch.no_grad():
        torch.testing.assert_close(lora(x, t, text), plain(x, t, text))


def test_lora_needs_an_attention_choice(tmp_path):
    with pytest.raises(SystemExit):
        motion_levers.main(["--out", str(tmp_path / "run"), "--lora-rank", "4", "--train-spatial"])


def test_wide_case_draws_simple_moves_of_every_kind_and_checks_the_8_directions():
    import argparse

    videos, captions = motion_levers.render_clips("wide", 24, 0, "red", "circle")
    assert videos.shape == (24, 3, 8, 64, 64)
    words = [c.split() for c in captions]
    assert all(len(w) == 5 and w[0] == "a" and w[3] == "moves" for w in words)  # "a {colour} {shape} moves {d}"
    assert len({w[1] for w in words}) > 3 and len({w[4] for w in words}) > 4
    prompts = motion_levers.check_prompts(argparse.Namespace(case="wide", samples=2))
    assert len(prompts) == 16 and {p.split()[-1] for p in prompts} == set(motion_levers.DIRECTIONS)
    assert motion_levers.check_prompts(argparse.Namespace(case="simple", samples=1, color="red", shape="circle")) == [
        f"a red circle moves {d}" for d in motion_levers.AXIS]


def test_motion_bias_speed_prints_both_forms_and_their_agreement(capsys):
    import motion_bias_speed

    assert motion_bias_speed.main(["--batch-size", "1", "--keyframes", "2", "--repeats", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split() == ["level", "tokens", "plain", "ms", "factored", "ms", "ratio", "max", "diff"]
    rows = [line.split() for line in lines[2:]]
    assert [r[:2] for r in rows] == [["8x8", "128"], ["4x4", "32"]]
    assert all(float(r[-1]) < 1e-4 for r in rows)  # the factored bias is the plain one


def test_plot_reads_lever_runs_and_keyframes_recipe_runs(tmp_path):
    lever = tmp_path / "lever"
    lever.mkdir()
    rows = [{c: "1.0" for c in motion_levers.COLUMNS} | {"step": str(s), "found": "right"} for s in (250, 500)]
    with (lever / "levers.csv").open("w", newline="") as f:
        import csv

        writer = csv.DictWriter(f, fieldnames=motion_levers.COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    recipe = tmp_path / "recipe"
    (recipe / "runs" / "keyframes").mkdir(parents=True)
    (recipe / "runs" / "keyframes" / "motion.csv").write_text(
        "step,num_videos,color_accuracy,direction_accuracy,moving_fraction,background_flicker,seconds\n"
        "500,16,1.0,0.3125,1.0,0.003,40\n1000,16,1.0,0.5625,1.0,0.002,41\n")
    assert [r["direction_accuracy"] for r in motion_levers.read_rows(recipe)] == ["0.3125", "0.5625"]
    assert motion_levers.main(["--plot", str(tmp_path / "curves.png"), str(lever), str(recipe)]) == 0
    assert (tmp_path / "curves.png").stat().st_size > 0
