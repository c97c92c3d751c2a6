"""Train the learned toy metrics on Moving Shapes and write the weights that ``minifusion.eval`` ships.

    python -m minifusion.eval.train_metrics --out data_samples/checkpoints/eval            # both models
    python -m minifusion.eval.train_metrics --out runs/eval --only classifier --steps 200   # a quick try

Writes into ``--out``: ``attribute_classifier/`` and ``text_video/`` (``save_pretrained``, float16
weights), ``metrics.json`` (the recipe, wall times, per-attribute accuracy on held-out and val
clips, similarity and retrieval figures) and ``log_*.csv`` (loss per logged step). One torch
thread by default (``--threads``): the numbers in the card were measured that way.

Recipe: AdamW (weight decay 0.01), linear warm-up for 5% of the steps then cosine decay to 0,
fresh clips every step from ``ClipStream`` (``minifusion.eval.metric_data``); the classifier's loss
is the sum over attribute heads of the cross-entropy (the direction of a bounce ignored), the
text-video model's is CLIP's symmetric InfoNCE. Accuracy is measured on the held-out split
(colour-shape pairs never seen in training) and on the val split (seen pairs, other clips).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from minifusion.eval.attribute_classifier import ATTRIBUTES, IGNORE, AttributeClassifier
from minifusion.eval.metric_data import ClipStream, labelled_clips
from minifusion.eval.text_video import TextVideoModel, contrastive_loss

CLASSIFIER_DIR, TEXT_VIDEO_DIR = "attribute_classifier", "text_video"


def _lr_at(step: int, steps: int, lr: float) -> float:
    warmup = max(1, steps // 20)
    if step < warmup:
        return lr * (step + 1) / warmup
    return 0.5 * lr * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))


def _train(model, stream: ClipStream, loss_fn, *, steps: int, lr: float, log_path: Path | None, name: str,
           progress: bool, log_every: int = 25) -> dict:
    """The shared loop: AdamW, warm-up + cosine, fresh batches; returns wall time and the last losses."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    model.train()
    rows, recent, start = ["step,loss,lr,seconds"], [], time.perf_counter()
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = _lr_at(step, steps, lr)
        loss = loss_fn(model, stream.batch(step))
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{name}: loss is {loss.item()} at step {step}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        recent = (recent + [loss.item()])[-log_every:]
        if (step + 1) % log_every == 0 or step + 1 == steps:
            seconds = time.perf_counter() - start
            rows.append(f"{step + 1},{sum(recent) / len(recent):.5f},{opt.param_groups[0]['lr']:.2e},{seconds:.1f}")
            if progress:
                print(f"  {name} step {step + 1}/{steps}  loss {sum(recent) / len(recent):.4f}  {seconds / 60:.1f} min",
                      file=sys.stderr, flush=True)
    if log_path is not None:
        log_path.write_text("\n".join(rows) + "\n")
    model.eval()
    return {"steps": steps, "seconds": time.perf_counter() - start, "final_loss": sum(recent) / len(recent)}


# -- the attribute classifier -------------------------------------------------------------------------
def classifier_loss(model: AttributeClassifier, batch: dict) -> torch.Tensor:
    logits = model(batch["video"])
    return sum(F.cross_entropy(logits[n], batch["labels"][n], ignore_index=IGNORE) for n in ATTRIBUTES)


@torch.no_grad()
def classifier_accuracy(model: AttributeClassifier, clips: dict) -> dict:
    """Per-attribute accuracy on labelled clips, overall and per motion; plus all-heads-right share."""
    probs = model.probabilities(clips["video"])
    out, correct_all = {}, torch.ones(len(clips["video"]), dtype=torch.bool)
    for name in ATTRIBUTES:
        labels = clips["labels"][name]
        keep = labels != IGNORE
        right = probs[name].argmax(dim=-1) == labels
        out[name] = right[keep].float().mean().item()
        correct_all &= right | ~keep
    out["all_heads"] = correct_all.float().mean().item()
    motions = [a["motion"] for a in clips["attributes"]]
    out["num_clips"] = len(motions)
    out["per_motion_all_heads"] = {m: correct_all[[x == m for x in motions]].float().mean().item()
                                   for m in sorted(set(motions))}
    return out


# -- the text-video model ------------------------------------------------------------------------------
def text_video_loss(model: TextVideoModel, batch: dict) -> torch.Tensor:
    ids, mask = model.tokenizer(batch["caption"])
    v, t = model(batch["video"], ids, mask)
    return contrastive_loss(v, t, model.logit_scale, batch["caption"])


@torch.no_grad()
def text_video_scores(model: TextVideoModel, clips: dict, *, seed: int = 0) -> dict:
    """Matching vs mismatched caption similarity and retrieval accuracy on labelled clips.

    mismatched: each video against the caption of another clip whose caption differs (a fixed
    derangement); retrieval: the share of videos whose own caption is the most similar among the
    distinct captions of the set (video -> text top-1), and the same for text -> video over clips.
    """
    captions = clips["caption"]
    v = model.encode_videos(clips["video"])
    t = model.encode_text(captions)
    matched = (v * t).sum(-1)
    g = torch.Generator().manual_seed(seed)
    other = torch.randperm(len(captions), generator=g)
    for i in range(len(captions)):  # move any partner with the same caption along until it differs
        j = int(other[i])
        while captions[j] == captions[i]:
            j = (j + 1) % len(captions)
        other[i] = j
    mismatched = (v * t[other]).sum(-1)
    unique = list(dict.fromkeys(captions))
    tu = model.encode_text(unique)
    own = torch.tensor([unique.index(c) for c in captions])
    v2t = ((v @ tu.T).argmax(-1) == own).float().mean().item()
    best_clip = (tu @ v.T).argmax(-1)  # (U,) the most similar clip per distinct caption
    t2v = sum(captions[int(best_clip[k])] == c for k, c in enumerate(unique)) / len(unique)
    return {"num_clips": len(captions), "num_captions": len(unique),
            "matched_similarity": matched.mean().item(), "mismatched_similarity": mismatched.mean().item(),
            "margin": (matched - mismatched).mean().item(),
            "matched_beats_mismatched": (matched > mismatched).float().mean().item(),
            "retrieval_video_to_text": v2t, "retrieval_text_to_video": t2v}


# -- sanity figures of the trained pair ----------------------------------------------------------------
@torch.no_grad()
def sanity_report(folder: Path, *, num_clips: int = 400, seed: int = 0) -> dict:
    """FVD of real val clips against altered sets, at ``num_clips`` and at 48 clips (the test's size).

    Against: other real clips (another seed: the floor), the same other clips with shuffled, reversed
    or frozen (first frame repeated) frames, with Gaussian pixel noise, and uniform noise. Reversed clips
    are real clips of the opposite direction: a set-level distance cannot see that (caption accuracy
    and CLIPSIM can), while shuffled and frozen clips are not videos of Moving Shapes at all.
    """
    from minifusion.eval.metric_data import shuffle_frames
    from minifusion.eval.toy_metrics import ToyMetrics

    metrics = ToyMetrics.from_pretrained(folder)
    real = metrics.measure(labelled_clips("val", num_clips, seed=seed)["video"])
    other = labelled_clips("val", num_clips, seed=seed + 1)["video"]
    g = torch.Generator().manual_seed(seed)
    sets = {"real (other clips)": other, "shuffled frames": shuffle_frames(other, seed),
            "reversed frames": other.flip(2), "frozen (first frame)": other[:, :, :1].expand_as(other).clone()}
    for sigma in (0.05, 0.1, 0.2):
        sets[f"noise std {sigma}"] = (other + sigma * torch.randn(other.shape, generator=g)).clamp(-1, 1)
    sets["uniform noise"] = torch.rand(other.shape, generator=g) * 2 - 1
    out = {"num_clips": num_clips, "fvd": {}, "fvd_48": {}}
    for name, videos in sets.items():
        m = metrics.measure(videos)
        out["fvd"][name] = metrics.fvd(real, m)
        out["fvd_48"][name] = metrics.fvd(real.subset(range(48)), m.subset(range(48)))
    return out


# -- command line ------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m minifusion.eval.train_metrics", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="folder for the weights and metrics.json (created)")
    parser.add_argument("--only", choices=("classifier", "text_video"), default=None, help="train one model only")
    parser.add_argument("--steps", type=int, default=None, help="steps of the classifier (default 1500)")
    parser.add_argument("--batch-size", type=int, default=32, help="clips per step (default 32)")
    parser.add_argument("--lr", type=float, default=2e-3, help="peak learning rate (default 2e-3)")
    parser.add_argument("--noise", type=float, default=0.05,
                        help="largest std of the Gaussian pixel noise added to training clips, in [-1, 1] units "
                             "(each clip draws its level in [0, noise]; default 0.05)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the weights and the training clips (default 0)")
    parser.add_argument("--eval-clips", type=int, default=1000, help="held-out and val clips measured (default 1000)")
    parser.add_argument("--init-video-encoder", type=Path, default=None, metavar="DIR",
                        help="text-video model: start its video encoder from this attribute classifier's (default: "
                             "OUT/attribute_classifier when it exists; 'none' = from scratch)")
    parser.add_argument("--text-video-steps", type=int, default=None,
                        help="steps of the text-video model (default 600)")
    parser.add_argument("--sanity-only", action="store_true",
                        help="train nothing: measure the FVD sanity figures of the weights in --out into metrics.json")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    metrics_path = out / "metrics.json"
    report = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
    if not args.sanity_only:
        report["command"] = "python -m minifusion.eval.train_metrics " + " ".join(sys.argv[1:] if argv is None
                                                                                 else argv)
    report["torch"], report["threads"] = torch.__version__, args.threads
    progress = not args.no_progress
    if args.only in (None, "classifier") and not args.sanity_only:
        torch.manual_seed(args.seed)
        model = AttributeClassifier()
        stream = ClipStream(batch_size=args.batch_size, seed=args.seed, single_shape=True, noise=args.noise)
        run = _train(model, stream, classifier_loss, steps=args.steps or 1500, lr=args.lr, name="classifier",
                     log_path=out / "log_attribute_classifier.csv", progress=progress)
        run.update(batch_size=args.batch_size, lr=args.lr, noise=args.noise, seed=args.seed,
                   parameters=model.num_parameters())
        model.save_pretrained(out / CLASSIFIER_DIR, dtype=torch.float16)
        model = AttributeClassifier.from_pretrained(out / CLASSIFIER_DIR)  # measure what ships: float16 weights
        run["heldout_accuracy"] = classifier_accuracy(model, labelled_clips("heldout", args.eval_clips, seed=0))
        run["val_accuracy"] = classifier_accuracy(model, labelled_clips("val", args.eval_clips, seed=0))
        report["attribute_classifier"] = run
        print(f"attribute classifier: {run['seconds'] / 60:.1f} min; held-out accuracy "
              + ", ".join(f"{n} {run['heldout_accuracy'][n]:.2%}" for n in ATTRIBUTES))
    if args.only in (None, "text_video") and not args.sanity_only:
        torch.manual_seed(args.seed)
        model = TextVideoModel()
        init = args.init_video_encoder or (out / CLASSIFIER_DIR if (out / CLASSIFIER_DIR).is_dir() else None)
        if init is not None and str(init) != "none":  # start from the classifier's video encoder: same architecture
            model.video_encoder.load_state_dict(AttributeClassifier.from_pretrained(init).encoder.state_dict())
            report["text_video_init"] = str(init)
        stream = ClipStream(batch_size=args.batch_size, seed=args.seed + 1, single_shape=False, noise=args.noise)
        run = _train(model, stream, text_video_loss, steps=args.text_video_steps or 600, lr=args.lr,
                     name="text_video",
                     log_path=out / "log_text_video.csv", progress=progress)
        run.update(batch_size=args.batch_size, lr=args.lr, noise=args.noise, seed=args.seed,
                   parameters=model.num_parameters(), logit_scale=model.logit_scale.exp().item())
        model.save_pretrained(out / TEXT_VIDEO_DIR, dtype=torch.float16)
        model = TextVideoModel.from_pretrained(out / TEXT_VIDEO_DIR)
        for split in ("heldout", "val"):  # two-shape clips included: the text-video model reads whole captions
            run[split] = text_video_scores(model, labelled_clips(split, args.eval_clips, seed=0, single_shape=False))
        report["text_video"] = run
        r = run["heldout"]
        print(f"text-video model: {run['seconds'] / 60:.1f} min; held-out similarity matched "
              f"{r['matched_similarity']:.3f} vs mismatched {r['mismatched_similarity']:.3f}; retrieval video->text "
              f"{r['retrieval_video_to_text']:.1%}")
    if args.sanity_only or args.only is None:
        report["sanity"] = sanity_report(out, num_clips=min(400, args.eval_clips))
        print("FVD against real val clips: " + ", ".join(f"{k} {v:.1f}" for k, v in report["sanity"]["fvd"].items()))
    metrics_path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
