"""The text_encoder stage: the caption corpus, BERT-style corruption, the denoising loss, a tiny run."""

from __future__ import annotations

import json

import pytest
import torch

from minifusion.data import parse_caption
from minifusion.data.caption_corpus import CaptionCorpus, random_attributes
from minifusion.models.text_encoder import TextEncoder
from minifusion.models.tokenizer import UNK_ID, moving_shapes_vocabulary, split_words
from minifusion.training import sample_generators
from minifusion.training.recipes import load_recipe
from minifusion.training.recipes.text_encoder import (
    TextDenoisingTask,
    TextEncoderRecipe,
    TokenPredictionHead,
    corrupt_tokens,
    train_text_encoder,
)

TINY_TE = {"text_encoder": {"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
                            "intermediate_size": 32},
           "training": {"steps": 3, "batch_size": 4, "checkpoint_every": 2, "log_every": 1, "device": "cpu"},
           "data": {"num_captions": 64}, "eval_captions": 16}


def test_corpus_covers_the_grammar_and_round_trips():
    corpus = CaptionCorpus(3000, seed=3)
    items = [corpus[i] for i in range(len(corpus))]
    assert all(parse_caption(it["caption"]) == it["attributes"] for it in items)  # grammatical, attributes exact
    words = {w for it in items for w in split_words(it["caption"])}
    assert words == set(moving_shapes_vocabulary()[2:])  # every word of the grammar shows up
    forms = {(it["attributes"]["motion"], it["attributes"]["color2"] != "none") for it in items}
    assert forms == {("moves", False), ("moves", True), ("bounces", False), ("rotates", False), ("grows", False),
                     ("shrinks", False)}
    assert corpus[17] == CaptionCorpus(3000, seed=3)[17] != CaptionCorpus(3000, seed=4)[17]  # pure function of (seed, i)
    heldout_pair = {("red", "triangle")} & {(it["attributes"]["color"], it["attributes"]["shape"]) for it in items}
    assert heldout_pair  # text pretraining sees every pair; only video splits hold pairs out


def test_corpus_of_a_folder_cycles_its_captions_and_rejects_bad_arguments():
    corpus = CaptionCorpus(5, captions=["a red circle moves right", "the moon glows"])
    assert [corpus[i]["caption"] for i in range(5)][:3] == ["a red circle moves right", "the moon glows",
                                                            "a red circle moves right"]
    assert corpus[1]["attributes"] == {}  # outside the grammar
    with pytest.raises(ValueError, match="length 0 is not allowed"):
        CaptionCorpus(0)
    with pytest.raises(ValueError, match="two_shape_fraction 2 is not allowed"):
        CaptionCorpus(5, two_shape_fraction=2)
    with pytest.raises(IndexError):
        CaptionCorpus(5)[5]
    rng = __import__("numpy").random.default_rng(0)
    assert all(random_attributes(rng, two_shape_fraction=1.0)["color2"] != "none" for _ in range(20))


def test_corruption_touches_15_to_30_percent_of_real_tokens_only_and_is_seeded():
    ids = torch.randint(2, 30, (64, 16))
    mask = torch.zeros(64, 16, dtype=torch.bool)
    lengths = torch.randint(3, 15, (64,))
    for b, n in enumerate(lengths):
        mask[b, :n] = True
    ids = ids * mask
    out, chosen = corrupt_tokens(ids, mask, sample_generators(0, range(64)), min_rate=0.15, max_rate=0.3,
                                 vocab_size=30)
    again, _ = corrupt_tokens(ids, mask, sample_generators(0, range(64)), min_rate=0.15, max_rate=0.3, vocab_size=30)
    assert torch.equal(out, again)
    assert not (chosen & ~mask).any() and torch.equal(out[~mask], ids[~mask])  # padding untouched
    k = chosen.sum(1)
    assert (k >= 1).all() and (k <= (0.3 * lengths).round().clamp(min=1)).all()
    assert (k >= (0.15 * lengths).round().clamp(min=1)).all()
    assert torch.equal(out[~chosen], ids[~chosen])  # only chosen tokens change
    unk = (out[chosen] == UNK_ID).float().mean()
    assert 0.65 < unk < 0.95  # about 80% become <unk>


def test_loss_is_the_token_cross_entropy_at_every_real_position():
    encoder = TextEncoder({"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
                           "intermediate_size": 32})
    head = TokenPredictionHead(16, encoder.tokenizer.vocab_size)
    model = torch.nn.ModuleDict({"text_encoder": encoder, "head": head})
    ids, mask = encoder.tokenizer(["a red circle moves right", "a big blue star grows"])
    task = TextDenoisingTask(min_corruption=0.15, max_corruption=0.3, vocab_size=encoder.tokenizer.vocab_size)
    loss = task.loss(model, {"input_ids": ids, "attention_mask": mask}, [0, 1], sample_generators(0, [0, 1]))
    corrupted, _ = corrupt_tokens(ids, mask, sample_generators(0, [0, 1]), min_rate=0.15, max_rate=0.3,
                                  vocab_size=encoder.tokenizer.vocab_size)
    logits = head(encoder(corrupted, mask)[0])
    by_hand = torch.stack([torch.nn.functional.cross_entropy(logits[b][mask[b]], ids[b][mask[b]]) for b in range(2)])
    assert torch.allclose(loss, by_hand.mean(), atol=1e-6)


def test_a_tiny_run_writes_a_loadable_encoder_and_its_metrics(tmp_path):
    train_text_encoder(tmp_path, config=TINY_TE, progress=False)
    encoder = TextEncoder.from_pretrained(tmp_path / "text_encoder")
    assert encoder.config.hidden_size == 16 and encoder.tokenizer.vocab == moving_shapes_vocabulary()
    metrics = json.loads((tmp_path / "runs" / "text_encoder" / "metrics.json").read_text())
    assert metrics["step"] == 3 and 0 <= metrics["token_accuracy_corrupted"] <= 1
    assert 0 <= metrics["token_accuracy_clean"] <= 1


def test_bad_recipes():
    with pytest.raises(ValueError, match="min_corruption 0.5 and max_corruption 0.2 are not allowed"):
        load_recipe(TextEncoderRecipe, {"min_corruption": 0.5, "max_corruption": 0.2})
    with pytest.raises(ValueError, match="eval_captions 0 is not allowed"):
        load_recipe(TextEncoderRecipe, {"eval_captions": 0})
