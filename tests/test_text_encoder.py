"""Tests for the word tokenizer and the small transformer text encoder with its null embedding."""

from __future__ import annotations

import warnings

import pytest
import torch

from minifusion.models.text_encoder import TextEncoder
from minifusion.models.tokenizer import PAD_ID, UNK_ID, Tokenizer, moving_shapes_vocabulary, split_words

CAPTIONS = [
    "a red circle moves right",
    "a fast blue square moves up-left",
    "a green triangle bounces",
    "a red circle and a blue square move left on a light background",
]


def tiny(**kwargs) -> TextEncoder:
    torch.manual_seed(0)
    config = dict(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32, max_length=8)
    config.update(kwargs)
    return TextEncoder.from_captions(CAPTIONS[:3], **config).eval()


# -- tokenizer -------------------------------------------------------------------------------------
def test_split_words_lowercases_and_splits_on_punctuation():
    assert split_words("A Red circle, moves UP-left!") == ["a", "red", "circle", "moves", "up", "left"]
    assert split_words("  ") == []


def test_from_captions_vocabulary_and_ids():
    tok = Tokenizer.from_captions(CAPTIONS, max_length=16)
    assert tok.vocab[:2] == ("<pad>", "<unk>")
    assert list(tok.vocab[2:]) == sorted(set(tok.vocab[2:]))
    assert {"up", "left", "background", "and"} <= set(tok.vocab)
    ids, mask = tok(["a red circle moves right", ""])
    assert ids.shape == mask.shape == (2, 16) and ids.dtype == torch.long and mask.dtype == torch.bool
    assert mask.sum(1).tolist() == [5, 0]
    assert (ids[~mask] == PAD_ID).all()
    assert tok.decode(ids[0]) == "a red circle moves right"
    assert ids[0, 1] == tok.token_to_id["red"]


def test_unknown_words_warn_and_map_to_unk():
    tok = Tokenizer.from_captions(CAPTIONS)
    with pytest.warns(UserWarning, match=r"\['pink', 'zooms'\]"):
        ids, mask = tok(["a pink circle zooms", "a pink square"])
    assert ids[0, 1] == UNK_ID and ids[0, 3] == UNK_ID and mask[0, :4].all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tok(CAPTIONS)  # known words: no warning


def test_long_prompts_raise_instead_of_truncating():
    tok = Tokenizer.from_captions(CAPTIONS[:1], max_length=5)
    tok("a red circle moves right")
    with pytest.raises(ValueError, match=r"has 7 words, more than max_length 5"):
        tok("a fast blue square moves up-left")
    with pytest.raises(ValueError, match="more than max_length 4"):
        Tokenizer.from_captions(CAPTIONS, max_length=4)


@pytest.mark.parametrize("prompts", [3, None, [], ["a red circle", 7], b"a red circle"])
def test_bad_prompts_raise(prompts):
    with pytest.raises(ValueError, match="prompts must be a str or a non-empty list of str"):
        Tokenizer.from_captions(CAPTIONS)(prompts)


@pytest.mark.parametrize(
    "vocab, match",
    [(("a", "b"), "must start with"), (("<pad>", "<unk>", "a", "a"), "more than once"),
     (("<pad>", "<unk>", "Red"), "lower-case words")],
)
def test_bad_vocab_raises(vocab, match):
    with pytest.raises(ValueError, match=match):
        Tokenizer(vocab)


def test_default_vocabulary_covers_the_moving_shapes_grammar():
    tok = Tokenizer(moving_shapes_vocabulary())
    assert tok.unknown_words(CAPTIONS + ["a small purple star rotates", "a slow cyan circle shrinks"]) == []


# -- text encoder ----------------------------------------------------------------------------------
def test_default_encoder_has_about_a_million_parameters():
    te = TextEncoder()
    assert 0.8e6 < te.num_parameters() < 1.2e6
    assert te.config.vocab == moving_shapes_vocabulary()
    assert "MFLOPs/frame" in te.summary()


def test_encode_shapes_mask_and_zero_padding():
    te = tiny()
    h, mask = te.encode(["a red circle moves right", "a green triangle bounces"])
    assert h.shape == (2, 8, 16) and mask.shape == (2, 8) and mask.dtype == torch.bool
    assert mask.sum(1).tolist() == [5, 4]
    assert (h[~mask] == 0).all() and (h[mask].abs().sum(-1) > 0).all()


def test_empty_prompt_is_the_null_embedding():
    te = tiny()
    h, mask = te.encode([""])
    null_h, null_mask = te.null_embedding(1)
    torch.testing.assert_close(h, null_h, rtol=0, atol=0)
    assert mask.tolist() == null_mask.tolist() == [[True] + [False] * 7]
    torch.testing.assert_close(h[0, 0], te.null_token.detach())
    # inside a mixed batch too, and the other rows do not change
    hb, maskb = te.encode(["a red circle moves right", ""])
    torch.testing.assert_close(hb[1], null_h[0], rtol=0, atol=0)
    torch.testing.assert_close(hb[0], te.encode("a red circle moves right")[0][0], rtol=1e-5, atol=1e-6)


def test_padding_never_changes_real_tokens():
    te = tiny()
    ids, mask = te.tokenizer(["a red circle moves right"])
    h, _ = te(ids, mask)
    ids2 = ids.clone()
    ids2[~mask] = 3  # garbage under the padding
    h2, _ = te(ids2, mask)
    torch.testing.assert_close(h, h2, rtol=0, atol=1e-6)
    ids3 = ids.clone()
    ids3[0, 1] = te.tokenizer.token_to_id["green"]
    assert not torch.allclose(te(ids3, mask)[0][0, 0], h[0, 0])  # but real tokens do


def test_sdpa_path_agrees_with_explicit_softmax():
    te = tiny()
    ids, mask = te.tokenizer(["a red circle moves right", "a blue square"])
    fast, _ = te(ids, mask)
    for block in te.blocks:
        block.attn.use_reference = True
    slow, _ = te(ids, mask)
    torch.testing.assert_close(fast, slow, rtol=1e-5, atol=1e-5)


def test_null_embedding_is_learned():
    te = tiny().train()
    h, mask = te.encode(["", "a red circle moves right"])
    h.pow(2).sum().backward()
    assert te.null_token.grad is not None and te.null_token.grad.abs().sum() > 0


def test_save_load_round_trip_keeps_vocabulary(tmp_path):
    te = tiny()
    te.save_pretrained(tmp_path / "te")
    loaded = TextEncoder.from_pretrained(tmp_path / "te").eval()
    assert loaded.tokenizer.vocab == te.tokenizer.vocab and loaded.config == te.config
    prompts = ["a red circle moves right", ""]
    torch.testing.assert_close(loaded.encode(prompts)[0], te.encode(prompts)[0], rtol=0, atol=0)


@pytest.mark.parametrize(
    "ids, mask, match",
    [
        (torch.zeros(1, 9, dtype=torch.long), torch.ones(1, 9, dtype=torch.bool), r"L <= max_length 8, got shape \(1, 9\)"),
        (torch.zeros(1, 4), torch.ones(1, 4, dtype=torch.bool), "integer token ids"),
        (torch.full((1, 4), 99), torch.ones(1, 4, dtype=torch.bool), "must lie in"),
        (torch.zeros(1, 4, dtype=torch.long), torch.ones(1, 3, dtype=torch.bool), "shape of input_ids"),
        (torch.zeros(1, 4, dtype=torch.long), torch.full((1, 4), 2), "only 0 and 1"),
    ],
)
def test_bad_forward_inputs_raise(ids, mask, match):
    with pytest.raises(ValueError, match=match):
        tiny()(ids, mask)


def test_bad_config_raises():
    with pytest.raises(ValueError, match="num_attention_heads 3 does not divide hidden_size 16"):
        tiny(num_attention_heads=3)
    with pytest.raises(ValueError, match="prompts must be"):
        tiny().encode(42)
