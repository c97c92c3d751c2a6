"""Stage ``text_encoder``: a language model of the captions alone, trained first and then frozen.

FusionFrames (arXiv 2311.13073, section 3) conditions every U-Net on a frozen Flan-UL2 encoder
that was trained on text, never on images. Trained jointly with the T2I model on still frames
instead, a toy encoder learns only the words a still frame shows: "right" and "left" look the
same in one frame, so their hidden states merged and no later stage could follow a direction.
Here the encoder is trained on the caption language (``CaptionCorpus``: every form of the
Moving Shapes grammar, or the captions of a ``--data`` folder) with a denoising objective:

- corrupt each caption: a rate r ~ U(``min_corruption``, ``max_corruption``) of its tokens
  (at least one) is chosen; each chosen token becomes ``<unk>`` (80%), a random word (10%) or
  stays (10%), as in BERT (Devlin et al. 2019);
- predict the original token at **every** position (a linear head on the hidden states,
  cross-entropy averaged over the real tokens), so every word stays recoverable from the
  encoder's output at its own position, and corrupted words must be inferred from the rest.

How this relates to Flan-UL2's objective (Tay et al. 2022, "UL2: Unifying Language Learning
Paradigms"): UL2 mixes three denoisers - R (regular span corruption, ~15% of tokens in short
spans), X (extreme: long spans or ~50% corruption) and S (sequential, prefix-LM) - and trains
an encoder-decoder to write the missing spans. Ours is the R-denoiser with spans of one token
and rates up to 30%, read out at every position by a linear head instead of a decoder: an
encoder is all the U-Nets use, and with captions of at most 14 words longer spans would erase
most of a caption. The head is discarded; only ``TextEncoder`` is saved.

Writes ``OUT/text_encoder/`` (EMA weights; its null token stays at its initialisation: the
unconditional input the U-Nets learn to read) and ``OUT/runs/text_encoder/`` (``metrics.json``
with the held-out token accuracy under corruption and without).

Taught in notebook 05 (notebooks/05_unet_blocks.ipynb).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from minifusion.checks import positive_int
from minifusion.data.caption_corpus import TWO_SHAPE_FRACTION, CaptionCorpus
from minifusion.models.modeling_utils import WEIGHTS_NAME
from minifusion.models.text_encoder import TextEncoder, TextEncoderConfig
from minifusion.models.tokenizer import Tokenizer, moving_shapes_vocabulary
from minifusion.training.config import TrainingConfig
from minifusion.training.distributed import finish_stage
from minifusion.training.objectives.text_encoder import TextDenoisingTask, corrupt_tokens
from minifusion.training.randomness import sample_generators, seed_everything
from minifusion.training.recipes.common import METRICS_NAME, prepare_recipe, run_dir, train_run, write_json
from minifusion.training.trainer import Trainer

STAGE = "text_encoder"


def _default_training() -> TrainingConfig:
    return TrainingConfig(steps=1500, batch_size=128, lr=1e-3, warmup_steps=100, weight_decay=0.01, ema_decay=0.99,
                          ema_warmup=True, checkpoint_every=500, log_every=10, extra={"recipe": STAGE})


@dataclass
class TextEncoderOptions:
    """``TextEncoderConfig`` without the vocabulary (every grammar word, or a ``--data`` folder's words)."""

    max_length: int = 16  # tokens per prompt
    hidden_size: int = 128  # token width = the U-Nets' cross_attention_dim
    num_hidden_layers: int = 5  # transformer blocks
    num_attention_heads: int = 4  # heads per self-attention
    intermediate_size: int = 512  # MLP hidden width
    dropout: float = 0.0  # dropout in the blocks (training only)


@dataclass
class CorpusOptions:
    num_captions: int = 200_000  # corpus length (random grammar captions; a --data folder's captions are cycled)
    two_shape_fraction: float = TWO_SHAPE_FRACTION  # share of two-shape captions
    seed: int = 0  # corpus seed
    folder: str | None = None  # a ClipFolder whose captions.txt is the corpus (CLI: --data DIR)


@dataclass
class TextEncoderRecipe:
    text_encoder: TextEncoderOptions = field(default_factory=TextEncoderOptions)
    training: TrainingConfig = field(default_factory=_default_training)
    data: CorpusOptions = field(default_factory=CorpusOptions)
    min_corruption: float = 0.15  # lowest share of a caption's tokens corrupted
    max_corruption: float = 0.30  # highest share
    eval_captions: int = 2000  # held-out captions (another corpus seed) for the token accuracy in metrics.json

    def validate(self) -> None:
        lo, hi = self.min_corruption, self.max_corruption
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (lo, hi)) or not 0 < lo <= hi < 1:
            raise ValueError(f"min_corruption {lo!r} and max_corruption {hi!r} are not allowed; they must satisfy "
                             "0 < min_corruption <= max_corruption < 1")
        positive_int("eval_captions", self.eval_captions)


class TokenPredictionHead(nn.Module):
    """Hidden states (B, L, D) -> logits over the vocabulary (B, L, V); used in training only."""

    def __init__(self, hidden_size: int, vocab_size: int) -> None:
        super().__init__()
        self.proj = nn.Linear(hidden_size, vocab_size)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.proj(hidden)


class CaptionTokens:
    """Corpus items -> {"input_ids": (B, L), "attention_mask": (B, L)}."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self.tokenizer = tokenizer

    def __call__(self, items: list[dict]) -> dict:
        input_ids, attention_mask = self.tokenizer([it["caption"] for it in items])
        return {"input_ids": input_ids, "attention_mask": attention_mask}


def _folder_captions(folder: str) -> list[str]:
    """The captions of a clip folder's ``captions.txt`` (the format ``ClipFolder`` reads)."""
    from minifusion.data.clip_folder import read_captions

    root = Path(folder)
    if not root.is_dir():
        raise ValueError(f"--data folder {str(root)!r} does not exist or is not a folder")
    if not (root / "captions.txt").is_file():
        raise ValueError(f"captions file {root / 'captions.txt'} not found; write one line per clip "
                         "'filename<TAB>caption'")
    return [caption for _, caption in read_captions(root / "captions.txt")]


def build_corpus(recipe: TextEncoderRecipe, *, seed_offset: int = 0, length: int | None = None) -> CaptionCorpus:
    captions = None if recipe.data.folder is None else _folder_captions(recipe.data.folder)
    return CaptionCorpus(length or recipe.data.num_captions, seed=recipe.data.seed + seed_offset,
                         two_shape_fraction=recipe.data.two_shape_fraction, captions=captions)


def build_text_encoder(recipe: TextEncoderRecipe) -> TextEncoder:
    """A fresh encoder whose vocabulary is every grammar word, or every word of the ``--data`` folder's captions."""
    options = dataclasses.asdict(recipe.text_encoder)
    if recipe.data.folder is None:
        vocab = moving_shapes_vocabulary()
    else:
        vocab = Tokenizer.from_captions(_folder_captions(recipe.data.folder), max_length=options["max_length"]).vocab
    return TextEncoder(TextEncoderConfig(vocab=tuple(vocab), **options))


@torch.no_grad()
def token_accuracy(encoder: TextEncoder, head: TokenPredictionHead, captions: list[str], *, corrupt: bool,
                   recipe: TextEncoderRecipe, seed: int = 12345) -> float:
    """Share of real tokens predicted right (at the corrupted positions when ``corrupt``, else at all)."""
    encoder.eval(), head.eval()
    ids, mask = encoder.tokenizer(captions)
    device = encoder.token_embedding.weight.device
    gens = sample_generators(seed, range(len(captions)))
    inputs, chosen = corrupt_tokens(ids, mask, gens, min_rate=recipe.min_corruption, max_rate=recipe.max_corruption,
                                    vocab_size=encoder.tokenizer.vocab_size) if corrupt else (ids, mask)
    hidden, _ = encoder(inputs.to(device), mask.to(device))
    right = (head(hidden).argmax(-1).cpu() == ids) & chosen
    return float(right.sum() / chosen.sum())


def train_text_encoder(out_dir: str | Path, *, steps: int | None = None,
                       config: TextEncoderRecipe | dict | str | Path | None = None, resume: bool = False,
                       data_dir: str | Path | None = None, seed: int | None = None, progress: bool = True) -> Path:
    """Train the text_encoder stage into the pipeline folder ``out_dir``; returns ``out_dir / "text_encoder"``.

    Arguments as ``train_autoencoder``; ``data_dir`` makes the folder's captions the corpus.
    """
    recipe = prepare_recipe(TextEncoderRecipe, STAGE, out_dir, config=config, steps=steps, resume=resume,
                            data_dir=data_dir, seed=seed, progress=progress)
    out_dir, run = Path(out_dir), run_dir(out_dir, STAGE)
    corpus = build_corpus(recipe)
    seed_everything(recipe.training.seed)  # the initial weights depend on the seed only
    encoder = build_text_encoder(recipe)
    head = TokenPredictionHead(recipe.text_encoder.hidden_size, encoder.tokenizer.vocab_size)
    task = TextDenoisingTask(min_corruption=recipe.min_corruption, max_corruption=recipe.max_corruption,
                             vocab_size=encoder.tokenizer.vocab_size)
    trainer = Trainer({"text_encoder": encoder, "head": head}, task, corpus, recipe.training, run,
                      collate_fn=CaptionTokens(encoder.tokenizer))
    result, seconds = train_run(trainer, recipe, run, resume=resume)
    if not trainer.is_main:
        return finish_stage(out_dir / STAGE)
    if result.model_dir is None:
        raise RuntimeError(f"training stopped at step {result.step} of {recipe.training.steps}")

    encoder = TextEncoder.from_pretrained(result.model_dir / "text_encoder")  # EMA weights
    head.load_state_dict(load_file(result.model_dir / "head" / WEIGHTS_NAME))  # its EMA weights too
    final = encoder.save_pretrained(out_dir / STAGE)
    held_out = [build_corpus(recipe, seed_offset=1, length=recipe.eval_captions)[i]["caption"]
                for i in range(recipe.eval_captions)]
    metrics = {"stage": STAGE, "step": result.step, "last_loss": result.last_loss, "session_seconds": seconds,
               "vocab_size": encoder.tokenizer.vocab_size, "eval_captions": len(held_out),
               "token_accuracy_corrupted": token_accuracy(encoder, head, held_out, corrupt=True, recipe=recipe),
               "token_accuracy_clean": token_accuracy(encoder, head, held_out, corrupt=False, recipe=recipe)}
    write_json(run / METRICS_NAME, metrics)
    if recipe.training.progress:
        print(f"text_encoder: step {result.step}, last loss {result.last_loss:.4g}; held-out token accuracy "
              f"{metrics['token_accuracy_corrupted']:.1%} at corrupted positions, "
              f"{metrics['token_accuracy_clean']:.1%} uncorrupted -> {final}")
    return finish_stage(final)

