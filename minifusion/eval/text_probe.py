"""Which caption words a text encoder keeps: linear probes on its pooled outputs.

A U-Net can only follow a word that reaches it. The probe asks whether each attribute of a
caption (colour, shape, motion, direction, speed, size) can be read *linearly* from the
encoder's output, mean-pooled over the caption's tokens (a summary like the U-Nets' text
pooling): a multinomial logistic regression is fitted on the pooled outputs of random grammar
captions (``CaptionCorpus``) and scored on other captions it never saw. Two levels frame it:

- majority: always answer the held-out set's commonest value (about what a probe of an encoder
  that erased the word scores);
- bag of words: the same probe on word counts (reads every word, but not their order).

Two-shape captions ("a red circle and a blue square move left") are scored apart: the colour of
the *first* object needs word order, which a bag of words cannot see (it scores about 50%).

Taught in notebook 05 (notebooks/05_unet_blocks.ipynb).
"""

from __future__ import annotations

from collections import Counter

import torch
import torch.nn.functional as F

from minifusion.checks import check_int
from minifusion.data.caption_corpus import CaptionCorpus
from minifusion.data.vocabulary import NONE
from minifusion.models.text_encoder import TextEncoder

SINGLE_ATTRIBUTES = ("color", "shape", "motion", "direction", "speed", "size")
TWO_SHAPE_ATTRIBUTES = ("color", "shape", "color2", "shape2", "direction")


@torch.no_grad()
def pooled_outputs(encoder: TextEncoder, captions: list[str], *, batch_size: int = 512) -> torch.Tensor:
    """(N, D): the encoder's hidden states averaged over each caption's real tokens."""
    encoder.eval()
    rows = []
    for start in range(0, len(captions), batch_size):
        hidden, mask = encoder.encode(captions[start:start + batch_size])  # (B, L, D), (B, L)
        m = mask.to(hidden.dtype)[..., None]
        rows.append(((hidden * m).sum(1) / m.sum(1)).float().cpu())
    return torch.cat(rows)


def bag_of_words(encoder: TextEncoder, captions: list[str]) -> torch.Tensor:
    """(N, V) word counts of each caption in the encoder's vocabulary."""
    ids, mask = encoder.tokenizer(captions)
    counts = torch.zeros(len(captions), encoder.tokenizer.vocab_size)
    return counts.scatter_add_(1, ids, mask.float())


def fit_linear_probe(features: torch.Tensor, labels: torch.Tensor, num_classes: int, *,
                     weight_decay: float = 1e-3, iterations: int = 200):
    """Multinomial logistic regression on standardised features (L-BFGS from zeros: deterministic).

    Returns ``predict(features) -> (N,) class ids``.
    """
    mean, std = features.mean(0), features.std(0).clamp(min=1e-6)
    x = (features - mean) / std  # (N, D)
    weight = torch.zeros(x.shape[1], num_classes, requires_grad=True)
    bias = torch.zeros(num_classes, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], max_iter=iterations, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = F.cross_entropy(x @ weight + bias, labels) + weight_decay * weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    weight, bias = weight.detach(), bias.detach()
    return lambda f: (((f - mean) / std) @ weight + bias).argmax(-1)


def probe_group(encoders: dict[str, TextEncoder], train: list[dict], test: list[dict],
                attributes: tuple[str, ...]) -> dict:
    """Per attribute: test accuracy of each encoder's probe, the majority level and the bag-of-words probe."""
    train_caps, test_caps = [r["caption"] for r in train], [r["caption"] for r in test]
    any_encoder = next(iter(encoders.values()))
    features = {name: (pooled_outputs(e, train_caps), pooled_outputs(e, test_caps)) for name, e in encoders.items()}
    features["bag_of_words"] = (bag_of_words(any_encoder, train_caps), bag_of_words(any_encoder, test_caps))
    out = {}
    for attribute in attributes:
        # only captions that state the attribute (direction: the "moves" captions)
        keep_train = [i for i, r in enumerate(train) if r["attributes"][attribute] != NONE]
        keep_test = [i for i, r in enumerate(test) if r["attributes"][attribute] != NONE]
        values = sorted({r["attributes"][attribute] for r in train + test} - {NONE})
        index = {v: i for i, v in enumerate(values)}
        y_train = torch.tensor([index[train[i]["attributes"][attribute]] for i in keep_train])
        y_test = torch.tensor([index[test[i]["attributes"][attribute]] for i in keep_test])
        # The best constant answer on these held-out captions (their mix differs from the training set's:
        # forms with few variants are mostly seen in training and so filtered out of the test set).
        commonest = Counter(y_test.tolist()).most_common(1)[0][1]
        row = {"classes": len(values), "num_test": len(keep_test), "majority": commonest / len(keep_test)}
        for name, (f_train, f_test) in features.items():
            f_train, f_test = f_train[keep_train], f_test[keep_test]
            predict = fit_linear_probe(f_train, y_train, len(values))
            row[name] = float((predict(f_test) == y_test).float().mean())
        out[attribute] = row
    return out


def probe_captions(num_train: int, num_test: int, *, two_shapes: bool, seed: int) -> tuple[list[dict], list[dict]]:
    """Training and held-out grammar captions (no held-out caption string occurs in the training set)."""
    fraction = 1.0 if two_shapes else 0.0
    train = [CaptionCorpus(num_train, seed=seed, two_shape_fraction=fraction)[i] for i in range(num_train)]
    seen = {r["caption"] for r in train}
    corpus = CaptionCorpus(num_test * 20, seed=seed + 1, two_shape_fraction=fraction)
    test, kept = [], set()
    for i in range(len(corpus)):
        r = corpus[i]
        if r["caption"] not in seen and r["caption"] not in kept:
            test.append(r)
            kept.add(r["caption"])
            if len(test) == num_test:
                break
    return train, test


def probe_text_encoders(encoders: dict[str, TextEncoder], *, num_train: int = 3000, num_test: int = 1000,
                        seed: int = 0) -> dict:
    """Probe every encoder on the same captions: ``{"single": {attr: row}, "two_shapes": {...}, ...}``.

    Each row holds ``classes``, ``majority``, ``bag_of_words`` and one accuracy per encoder name.
    """
    if not encoders:
        raise ValueError("give at least one text encoder to probe")
    check_int("num_train", num_train, minimum=10)
    check_int("num_test", num_test, minimum=10)
    report = {"num_train": num_train, "seed": seed, "encoders": list(encoders)}
    for group, two, attributes in (("single", False, SINGLE_ATTRIBUTES), ("two_shapes", True, TWO_SHAPE_ATTRIBUTES)):
        train, test = probe_captions(num_train, num_test, two_shapes=two, seed=seed + (7 if two else 0))
        report[group] = probe_group(encoders, train, test, attributes)
        report[f"{group}_num_test"] = len(test)
    return report


def format_probe_report(report: dict) -> str:
    """The probe report as two plain-text tables (one per caption group)."""
    names = report["encoders"]
    widths = [max(len(n), 8) for n in names]
    lines = []
    for group, title in (("single", "single-object captions"), ("two_shapes", "two-shape captions")):
        lines.append(f"{title} ({report[f'{group}_num_test']} held-out, probes fitted on {report['num_train']}):")
        head = f"  {'attribute':<10} {'classes':>7} {'scored':>6}  " + "  ".join(f"{n:>{w}}" for n, w in zip(names, widths))
        lines.append(head + f"  {'majority':>9}  {'bag of words':>12}")
        for attribute, row in report[group].items():
            cells = "  ".join(f"{row[n]:>{w}.1%}" for n, w in zip(names, widths))
            lines.append(f"  {attribute:<10} {row['classes']:>7} {row['num_test']:>6}  {cells}  {row['majority']:>9.1%}  "
                         f"{row['bag_of_words']:>12.1%}")
    return "\n".join(lines)


__all__ = ["SINGLE_ATTRIBUTES", "TWO_SHAPE_ATTRIBUTES", "bag_of_words", "fit_linear_probe", "format_probe_report",
           "pooled_outputs", "probe_captions", "probe_group", "probe_text_encoders"]
