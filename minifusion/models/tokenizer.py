"""A word-level tokenizer built from the training captions, with pad and unknown-word tokens.

FusionFrames (arXiv 2311.13073, section 3) conditions on the frozen Flan-UL2 encoder with its
SentencePiece vocabulary; the toy captions of Moving Shapes use a few dozen words, so a
word-level vocabulary built from the data is enough and every token is readable.

Rules:
- text is lower-cased and split into runs of letters and digits: whitespace and punctuation
  (including hyphens: "up-left" -> "up", "left") separate words;
- id 0 is ``<pad>``, id 1 is ``<unk>``; the words follow in alphabetical order;
- a word outside the vocabulary becomes ``<unk>`` and a ``UserWarning`` lists those words;
- every prompt is padded to ``max_length`` tokens. **A prompt with more than ``max_length``
  words raises a ValueError** (nothing is silently cut: a dropped "left" would change what is
  asked for); build the tokenizer with a larger ``max_length`` for longer captions;
- the empty prompt "" has no tokens (its mask row is all False); the text encoder maps it to
  its learned null embedding (classifier-free guidance).

Taught in notebooks 05 and 06 (notebooks/05_unet_blocks.ipynb, notebooks/06_text_to_image.ipynb).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable, Sequence
from functools import lru_cache

import torch

from minifusion.checks import positive_int

PAD_TOKEN = "<pad>"
UNK_TOKEN = "<unk>"
SPECIAL_TOKENS = (PAD_TOKEN, UNK_TOKEN)
PAD_ID, UNK_ID = 0, 1
_WORD = re.compile(r"[a-z0-9]+")


def split_words(text: str) -> list[str]:
    """Lower-case and split on anything that is not a letter or digit."""
    if not isinstance(text, str):
        raise ValueError(f"text must be a str, got {type(text).__name__}")
    return _WORD.findall(text.lower())


def check_prompts(prompts: object) -> list[str]:
    """A str or a non-empty list/tuple of str -> list of str; anything else raises ValueError."""
    if isinstance(prompts, str):
        return [prompts]
    if isinstance(prompts, (list, tuple)) and prompts and all(isinstance(p, str) for p in prompts):
        return list(prompts)
    if isinstance(prompts, (list, tuple)):
        bad = [type(p).__name__ for p in prompts if not isinstance(p, str)]
        got = "an empty list" if not prompts else f"a list holding {', '.join(sorted(set(bad)))}"
    else:
        got = type(prompts).__name__
    raise ValueError(f"prompts must be a str or a non-empty list of str, got {got}")


class Tokenizer:
    """Word-level tokenizer: prompts -> (input_ids (B, L) long, attention_mask (B, L) bool).

    Args:
        vocab: the tokens by id; must start with ``<pad>``, ``<unk>`` and hold each word once.
        max_length: L, the padded length (and the most words a prompt may have).
    """

    def __init__(self, vocab: Sequence[str], *, max_length: int = 16) -> None:
        vocab = tuple(vocab)
        if vocab[:2] != SPECIAL_TOKENS:
            raise ValueError(f"vocab must start with {list(SPECIAL_TOKENS)}, got {list(vocab[:2])}")
        if len(set(vocab)) != len(vocab):
            dupes = sorted({w for w in vocab if vocab.count(w) > 1})
            raise ValueError(f"vocab holds words more than once: {dupes}")
        bad = [w for w in vocab[2:] if not isinstance(w, str) or split_words(w) != [w]]
        if bad:
            raise ValueError(f"vocab entries must be lower-case words of letters and digits, got {bad[:5]}")
        positive_int("max_length", max_length)
        self.vocab = vocab
        self.max_length = max_length
        self.token_to_id = {w: i for i, w in enumerate(vocab)}

    @classmethod
    def from_captions(cls, captions: Iterable[str], *, max_length: int = 16) -> Tokenizer:
        """Vocabulary = every word of ``captions`` (alphabetical), after ``<pad>`` and ``<unk>``.

        Raises ValueError if a caption has more than ``max_length`` words.
        """
        captions = check_prompts(list(captions) if not isinstance(captions, str) else captions)
        words: set[str] = set()
        for caption in captions:
            split = split_words(caption)
            if len(split) > max_length:
                raise ValueError(f"caption {caption!r} has {len(split)} words, more than max_length {max_length}; "
                                 f"pass a larger max_length")
            words.update(split)
        return cls(SPECIAL_TOKENS + tuple(sorted(words)), max_length=max_length)

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def tokenize(self, prompt: str) -> list[int]:
        """One prompt -> its token ids (no padding); unknown words give ``<unk>`` silently."""
        words = split_words(prompt)
        if len(words) > self.max_length:
            raise ValueError(f"prompt {prompt!r} has {len(words)} words, more than max_length {self.max_length}; "
                             f"shorten it (prompts are never truncated)")
        return [self.token_to_id.get(w, UNK_ID) for w in words]

    def unknown_words(self, prompts: str | list[str]) -> list[str]:
        """Words of ``prompts`` that are not in the vocabulary (sorted, each once)."""
        return sorted({w for p in check_prompts(prompts) for w in split_words(p) if w not in self.token_to_id})

    def __call__(self, prompts: str | list[str], *, stacklevel: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
        """Prompts -> input_ids (B, max_length) int64 and attention_mask (B, max_length) bool (True = word).

        ``stacklevel`` is passed to the unknown-word warning (so callers can point it at user code).
        """
        prompts = check_prompts(prompts)
        ids = torch.full((len(prompts), self.max_length), PAD_ID, dtype=torch.long)
        mask = torch.zeros((len(prompts), self.max_length), dtype=torch.bool)
        for row, prompt in enumerate(prompts):
            tokens = self.tokenize(prompt)
            ids[row, : len(tokens)] = torch.tensor(tokens, dtype=torch.long)
            mask[row, : len(tokens)] = True
        unknown = self.unknown_words(prompts)
        if unknown:
            warnings.warn(f"words not in the vocabulary, encoded as {UNK_TOKEN}: {unknown}", UserWarning, stacklevel=stacklevel)
        return ids, mask

    def decode(self, input_ids: Sequence[int] | torch.Tensor) -> str:
        """Token ids of one prompt -> text (padding dropped)."""
        ids = input_ids.tolist() if torch.is_tensor(input_ids) else list(input_ids)
        for i in ids:
            if not isinstance(i, int) or not 0 <= i < self.vocab_size:
                raise ValueError(f"token id {i!r} is not in [0, {self.vocab_size - 1}]")
        return " ".join(self.vocab[i] for i in ids if i != PAD_ID)

    def __repr__(self) -> str:
        return f"Tokenizer(vocab_size={self.vocab_size}, max_length={self.max_length})"


@lru_cache(maxsize=1)
def moving_shapes_vocabulary() -> tuple[str, ...]:
    """The vocabulary of every caption the Moving Shapes grammar can write (specials first).

    Built by asking ``minifusion.data.caption_for`` for captions that vary each attribute, so
    the grammar in ``minifusion.data`` stays the single source of the words.
    """
    from minifusion.data.captions import caption_for
    from minifusion.data.vocabulary import (
        BACKGROUND_NAMES,
        COLOR_NAMES,
        DIRECTION_NAMES,
        MOTIONS,
        SHAPES,
        SIZES,
        SPEEDS,
    )

    captions = []
    for color in COLOR_NAMES:
        for shape in SHAPES:
            captions.append(caption_for(color=color, shape=shape, motion="moves", direction="right"))
            captions.append(caption_for(color="red", shape="square", motion="moves", direction="left",
                                        color2=color, shape2=shape) if (color, shape) != ("red", "square") else "")
    for motion in MOTIONS:
        for direction in DIRECTION_NAMES + ("none",):
            for speed in SPEEDS:
                for size in SIZES:
                    for background in BACKGROUND_NAMES:
                        try:
                            captions.append(caption_for(color="red", shape="square", motion=motion, direction=direction,
                                                        speed=speed, size=size, background=background))
                        except ValueError:
                            pass
    return Tokenizer.from_captions(captions).vocab
