"""Text probes: an erased word reads at the majority level, a bag of words reads every word but not their order."""

from __future__ import annotations

import json

import pytest
import torch

from minifusion.cli import main
from minifusion.data import COLOR_NAMES, SHAPES, parse_caption
from minifusion.eval.text_probe import bag_of_words, fit_linear_probe, pooled_outputs, probe_captions, probe_group
from minifusion.models.text_encoder import TextEncoder
from minifusion.pipelines import pretrained

TINY = {"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 32}


def _rows(captions):
    return [{"caption": c, "attributes": parse_caption(c)} for c in captions]


def test_a_word_the_encoder_cannot_tell_apart_reads_at_the_majority_level():
    torch.manual_seed(0)
    encoder = TextEncoder(TINY)
    ids = encoder.tokenizer.token_to_id
    with torch.no_grad():  # "left" and "right" become the same token for this encoder
        encoder.token_embedding.weight[ids["left"]] = encoder.token_embedding.weight[ids["right"]]
    captions = [f"a {c} {s} moves {d}" for c in COLOR_NAMES for s in SHAPES for d in ("left", "right")]
    train, test = _rows(captions[0::2] + captions[1::4]), _rows(captions[3::4])
    report = probe_group({"erased": encoder}, train, test, ("direction",))["direction"]
    assert report["erased"] <= report["majority"] + 1e-6  # no linear read-out can separate identical outputs
    assert report["bag_of_words"] == 1.0


def test_bag_of_words_cannot_tell_which_colour_comes_first():
    train, test = probe_captions(400, 200, two_shapes=True, seed=0)
    encoder = TextEncoder(TINY)
    report = probe_group({"random": encoder}, train, test, ("color", "direction"))
    assert report["direction"]["bag_of_words"] == 1.0
    assert report["color"]["bag_of_words"] < 0.75  # about one half: both colours are counted alike
    assert not {r["caption"] for r in test} & {r["caption"] for r in train}  # held-out captions


def test_pooling_averages_real_tokens_only_and_the_probe_fits_separable_data():
    encoder = TextEncoder(TINY)
    hidden, mask = encoder.encode(["a red circle moves right"])
    assert torch.allclose(pooled_outputs(encoder, ["a red circle moves right"])[0], hidden[0, :5].mean(0), atol=1e-6)
    counts = bag_of_words(encoder, ["a red circle moves right"])
    assert counts.sum() == 5 and counts[0, encoder.tokenizer.token_to_id["red"]] == 1
    x = torch.randn(200, 5)
    y = (x[:, 0] > 0).long() + 2 * (x[:, 1] > 0).long()
    predict = fit_linear_probe(x, y, 4)
    assert (predict(x) == y).float().mean() > 0.95


def test_probe_text_command_prints_and_writes_json(tmp_path, capsys):
    path = tmp_path / "probe.json"
    assert main(["probe-text", "--no-compare", "--num-train", "100", "--num-test", "50", "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert "single-object captions" in out and "two-shape captions" in out and "bag of words" in out
    report = json.loads(path.read_text())
    assert report["checkpoints"]["this encoder"] == str(pretrained())
    assert set(report["single"]) == {"color", "shape", "motion", "direction", "speed", "size"}
    assert set(report["two_shapes"]) == {"color", "shape", "color2", "shape2", "direction"}


def test_probe_text_bad_input(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["probe-text", "--checkpoint", "no_such_folder"]) == 2
    assert "error: no text encoder in 'no_such_folder'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["probe-text", "--num-train", "5"])
    assert "argument --num-train: '5' must be an integer >= 10" in capsys.readouterr().err
