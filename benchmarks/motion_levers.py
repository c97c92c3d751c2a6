"""Debug the keyframe model's motion: overfit one batch, then the simplest case, lever by lever.

    python benchmarks/motion_levers.py --out runs/levers/overfit-base --case overfit --steps 600
    python benchmarks/motion_levers.py --out runs/levers/overfit-spatial --case overfit --train-spatial
    python benchmarks/motion_levers.py --out runs/levers/... --resume      # continues a stopped run
    python benchmarks/motion_levers.py --plot docs/images/motion_levers.png runs/levers/a runs/levers/b
    python benchmarks/motion_levers.py --inspect runs/levers/a   # how much the temporal parts do, vs the T2I model

The keyframe model starts from the T2I model trained on the frozen text-only encoder
(``data_samples/checkpoints/t2i-text-only``: its autoencoder, text encoder and U-Net). Cases:

- ``overfit``: one batch of four clips, "a red circle moves right / left / up / down", trained on
  again and again (fresh noise and timesteps each step). A model that cannot memorise four clips
  has a wiring problem, not a data or compute problem;
- ``simple``: one colour and one shape, the path always centred in the frame, the 4 axis
  directions (``--clips`` clips): the word alone decides where the object is in every keyframe;
- ``starts``: the simple case with random start positions, the one axis widened: "right" now means
  right of where the object was, a relation between keyframes, not a place in the frame;
- ``wide``: the next step out - Moving Shapes clips "a {colour} {shape} moves {direction}" of every
  colour and shape, the 8 directions, random start positions, black background (``--clips`` clips);
  its checks sample the 8 directions, each with its own (colour, shape).

Every ``--check-every`` steps the run writes to ``OUT/levers.csv``: the training loss (mean since
the last check), the word-flip probe (``minifusion.eval.word_flip``: how much the predicted clean
keyframes get worse when "right" is replaced by "left", per noise level) on the first four clips,
and the pixel direction of sampled keyframes (the four prompts x ``--samples`` seeds, DDIM, guidance 5)
with a frame strip ``OUT/samples_STEP.png``. ``OUT/state.pt`` (atomic) lets ``--resume`` continue.
One torch thread by default: run several levers side by side.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import time
from pathlib import Path

import torch

from minifusion.argtypes import int_at_least

AXIS = ("right", "left", "up", "down")
CHECKPOINT = Path(__file__).resolve().parents[1] / "data_samples" / "checkpoints" / "t2i-text-only"
FRAME_SKIP, NUM_KEYFRAMES = 4, 8
COLUMNS = ("step", "loss", "seconds", "direction_accuracy", "moving_fraction", "color_accuracy",
           "background_flicker", "found", "flip_ratio_999", "flip_ratio_950", "flip_ratio_850", "flip_ratio_700",
           "flip_ratio_500", "flip_ratio_250", "flip_change_999", "flip_change_850", "flip_change_500")


def render_clips(case: str, num_clips: int, seed: int, color: str, shape: str) -> tuple[torch.Tensor, list[str]]:
    """(N, 3, K, 64, 64) keyframe clips in [-1, 1] and their captions."""
    from minifusion.data.clips import make_params
    from minifusion.data.render import render_clip

    if case == "wide":
        from minifusion.data import MovingShapes

        clips = MovingShapes("train", num_frames=NUM_KEYFRAMES, frame_skip=FRAME_SKIP, seed=seed, length=num_clips,
                             motions=("moves",), simple_fraction=1.0)
        items = [clips[i] for i in range(num_clips)]
        return torch.stack([item["video"] for item in items]), [item["caption"] for item in items]
    videos, captions = [], []
    n = len(AXIS) if case == "overfit" else num_clips
    for i in range(n):
        direction = AXIS[i % len(AXIS)]
        params = make_params(color=color, shape=shape, motion="moves", direction=direction,
                             num_frames=NUM_KEYFRAMES, frame_skip=FRAME_SKIP, seed=seed * 100003 + i)
        if case == "simple":  # the same path for every clip of a direction: centred in the frame
            track = params.objects[0]
            span = params.duration
            centre = (0.5 - track.velocity[0] * span / 2, 0.5 - track.velocity[1] * span / 2)
            params = dataclasses.replace(params, objects=(dataclasses.replace(track, position=centre),))
        videos.append(render_clip(params, params.times, 64))
        captions.append(params.caption)
    return torch.stack(videos), captions


WIDE_PAIRS = (("red", "circle"), ("blue", "square"), ("green", "triangle"), ("yellow", "star"),
              ("purple", "circle"), ("cyan", "square"), ("white", "triangle"), ("red", "star"))
DIRECTIONS = ("right", "left", "up", "down", "up-right", "up-left", "down-right", "down-left")


def check_prompts(args) -> list[str]:
    """The prompts each check samples (``--samples`` seeds each): the 4 axis directions of ``--color``
    ``--shape``, or for the wide case the 8 directions, each with its own (colour, shape)."""
    if args.case == "wide":
        return [f"a {c} {s} moves {d}" for (c, s), d in zip(WIDE_PAIRS, DIRECTIONS) for _ in range(args.samples)]
    return [f"a {args.color} {args.shape} moves {d}" for d in AXIS for _ in range(args.samples)]


def load_parts(checkpoint: Path):
    from minifusion.diffusion import DDPMScheduler
    from minifusion.models import Autoencoder, TextEncoder, UNet

    config = json.loads((checkpoint / "scheduler" / "scheduler_config.json").read_text())
    config.pop("_class_name", None)
    return (Autoencoder.from_pretrained(checkpoint / "autoencoder").eval(),
            TextEncoder.from_pretrained(checkpoint / "text_encoder").eval(),
            UNet.from_pretrained(checkpoint / "unet"), DDPMScheduler.from_config(config))


def trained_attention_prefixes(model, spatial_params: str) -> tuple[str, ...]:
    """Name prefixes of the spatial attention layers that ``--spatial-params`` trains: every spatial
    block's attention ("attention": self-attention and cross-attention to the text) or only the
    cross-attention to the text ("cross-attention")."""
    from minifusion.nn import AttentionBlock

    return tuple(f"{name}.attention." for name, module in model.named_modules()
                 if isinstance(module, AttentionBlock) and ".temporal_layers." not in name
                 and (spatial_params == "attention" or module.is_cross_attention))


def build_model(unet, args):
    from minifusion.models import KeyframeUNet
    from minifusion.nn.lora import add_lora

    torch.manual_seed(args.seed)
    model = KeyframeUNet.from_t2i(unet, temporal=args.temporal, num_frames=NUM_KEYFRAMES,
                                  sample_size=unet.config.sample_size, temporal_text_pooling=True,
                                  spatiotemporal_attention_size=args.spatiotemporal_size,
                                  temporal_text_attention_size=args.temporal_text_size,
                                  temporal_text_per_frame=args.text_per_frame,
                                  spatiotemporal_motion_bias=args.motion_bias)
    model.freeze_spatial()
    if args.train_spatial:
        if args.spatial_params == "all":
            model.requires_grad_(True)
            return model
        prefixes = trained_attention_prefixes(model, args.spatial_params)
        if args.lora_rank:  # a low-rank update of those layers; their weights stay frozen
            add_lora(model, lambda name: name.startswith(prefixes), args.lora_rank)
        else:
            for name, p in model.named_parameters():
                if name.startswith(prefixes):
                    p.requires_grad_(True)
    return model


def sample_and_score(model, autoencoder, text_encoder, scheduler, args, step: int, out: Path,
                     name: str | None = None) -> dict:
    from minifusion.diffusion import DDIMScheduler
    from minifusion.eval import motion_report
    from minifusion.pipeline import FusionFramesPipeline
    from minifusion.pipelines import PipelineSettings
    from minifusion.viz import show_frames

    prompts = check_prompts(args)
    settings = PipelineSettings(latent_range=args.latent_range, keyframe_frame_skip=FRAME_SKIP)
    pipe = FusionFramesPipeline(autoencoder=autoencoder, text_encoder=text_encoder, keyframe_unet=model,
                                scheduler=DDIMScheduler.from_config(scheduler.config), settings=settings)
    was_training = model.training
    import minifusion.pipelines.keyframes as keyframes_module

    plain_randn = keyframes_module.randn

    def mixed_randn(shape, generator, device):  # the keyframes' initial noise, with the training's shared part
        noise = plain_randn(shape, generator, device)
        if args.shared_noise > 0:
            shared = plain_randn((shape[0], shape[1], 1, *shape[3:]), generator, device)
            noise = args.shared_noise ** 0.5 * shared + (1 - args.shared_noise) ** 0.5 * noise
        return noise

    keyframes_module.randn = mixed_randn
    try:
        videos = pipe(prompts, num_keyframes=NUM_KEYFRAMES, num_inference_steps=20, guidance_scale=5.0,
                      interpolation_passes=0, output_type="pt", progress=False,
                      generator=torch.Generator().manual_seed(0)).keyframes  # (B, 3, K, H, W) in [0, 1]
    finally:
        keyframes_module.randn = plain_randn
        model.train(was_training)
    directions = [p.rsplit(" ", 1)[1] for p in prompts]
    report = motion_report(videos, [p.split()[1] for p in prompts], directions, value_range=(0.0, 1.0))
    titles = [f"{p} -> {d}" for p, d in zip(prompts, report["directions"])]
    fig = show_frames(videos, titles=titles, value_range=(0, 1))
    fig.savefig(out / (name or f"samples_{step:05d}.png"), dpi=60, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return report


def read_rows(run: Path) -> list[dict]:
    """A lever run's checks (``levers.csv``), or a keyframes recipe run's motion checks
    (``OUT/runs/keyframes/motion.csv``: direction only, no word-flip probe)."""
    path = run / "levers.csv"
    if not path.is_file():
        path = run / "runs" / "keyframes" / "motion.csv"
    if not path.is_file():
        raise SystemExit(f"{run} has no levers.csv (not a motion_levers run folder) and no runs/keyframes/motion.csv "
                         "(not a keyframes recipe folder)")
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def plot_runs(path: Path, runs: list[Path]) -> None:
    """Learning curves of several runs: direction of sampled keyframes, and the word-flip ratio at two levels."""
    import matplotlib.pyplot as plt

    all_rows = {run: read_rows(run) for run in runs}  # every folder checked before a figure exists
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for run, rows in all_rows.items():
        steps = [int(r["step"]) for r in rows]
        axes[0].plot(steps, [float(r["direction_accuracy"]) for r in rows], marker="o", label=run.name)
        if "flip_ratio_950" in rows[0]:  # a recipe's motion checks have no word-flip probe
            axes[1].plot(steps, [float(r["flip_ratio_950"]) for r in rows], marker="o", label=run.name)
            axes[2].plot(steps, [float(r["flip_ratio_700"]) for r in rows], marker="o", label=run.name)
    axes[0].axhline(1 / 8, color="grey", ls=":", label="chance (8 directions read)")
    axes[0].set_ylim(-0.03, 1.03)
    for ax, title in zip(axes, ("direction of sampled keyframes", "word-flip x0 error ratio, t = 950",
                                "word-flip x0 error ratio, t = 700")):
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("step")
    axes[1].axhline(1, color="grey", ls=":")
    axes[2].axhline(1, color="grey", ls=":")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    print(f"wrote {path}")


@torch.no_grad()
def inspect_run(run: Path, ablate: str | None = None) -> None:
    """Print, for a run's last state (or a kept ``state_STEP.pt``) on its first four clips: each temporal
    branch's output norm over its input's, the noise error of the keyframe model next to the T2I model's
    applied frame by frame, the clean-latent error on training clips next to held-out ones, and what each
    motion-biased head reads. With ``ablate``, also sample the checks with those layers' output zeroed."""
    state = torch.load(run if run.is_file() else run / "state.pt", weights_only=False)  # a run folder or a kept state
    older = {"spatiotemporal_size": 0, "loss_weight_cap": 0.0, "spatial_lr": None, "shared_noise": 0.0,
             "spatial_params": "all", "lora_rank": 0, "temporal_text_size": 0, "text_per_frame": False,
             "motion_bias": False}
    args = argparse.Namespace(**{**older, **state["args"]})  # runs saved before these options had them
    autoencoder, text_encoder, unet, scheduler = load_parts(Path(args.checkpoint))
    model = build_model(unet, args)
    model.load_state_dict(state["model"])
    model.eval()
    videos, captions = render_clips(args.case, args.clips, args.seed, args.color, args.shape)
    latents = autoencoder.encode(videos[:4])
    ids, mask = text_encoder.tokenizer(captions[:4])
    hidden, hidden_mask = text_encoder(ids, mask)
    positions = torch.arange(NUM_KEYFRAMES, dtype=torch.float32) * FRAME_SKIP
    ratios: dict[str, float] = {}
    hooks = [block.branch.register_forward_hook(
        lambda mod, inp, out, key=key: ratios.__setitem__(key, float(out.norm() / inp[0].norm())))
        for key, block in model.temporal_blocks.items()]
    noise = torch.randn(latents.shape, generator=torch.Generator().manual_seed(0))
    print(f"{run} at step {state['step']}:")
    for t in (900, 500):
        tt = torch.full((latents.shape[0],), t)
        x_t = scheduler.add_noise(latents, noise, tt)
        ours = model(x_t, tt, hidden, hidden_mask, frame_positions=positions)
        t2i = torch.stack([unet(x_t[:, :, k], tt, hidden, hidden_mask) for k in range(x_t.shape[2])], dim=2)
        e_ours, e_t2i = (ours - noise).pow(2).mean().item(), (t2i - noise).pow(2).mean().item()
        print(f"  t = {t}: noise MSE keyframe model {e_ours:.5f}, T2I frame by frame {e_t2i:.5f} "
              f"({100 * (1 - e_ours / e_t2i):.0f}% lower); temporal branch / input norm "
              f"{min(ratios.values()):.3f}..{max(ratios.values()):.3f} over {len(ratios)} blocks")
    for handle in hooks:
        handle.remove()
    print_held_out(model, unet, autoencoder, text_encoder, scheduler, args)
    print_velocities(model, text_encoder, args)
    if ablate is not None:
        from minifusion.nn import MotionBiasedAttention, TemporalTextAttention

        kind = {"text-attention": TemporalTextAttention, "motion-bias": MotionBiasedAttention}[ablate]
        zeroed = [b.branch for b in model.temporal_blocks.values() if isinstance(b.branch, kind)]
        if not zeroed:
            raise SystemExit(f"{run} has no {kind.__name__} layers to ablate")
        for layer in zeroed:
            layer.to_out.weight.zero_()
            layer.to_out.bias.zero_()
        folder = run.parent if run.is_file() else run
        strip = f"ablate_{ablate}_{state['step']:05d}.png"
        report = sample_and_score(model, autoencoder, text_encoder, scheduler, args, state["step"], folder, strip)
        print(f"  {folder / strip}: without the {len(zeroed)} {kind.__name__} layers' output: direction "
              f"{report['direction_accuracy']:.2f}, background flicker {report['background_flicker']:.3f}, "
              f"found {' '.join(report['directions'])}")


def print_held_out(model, unet, autoencoder, text_encoder, scheduler, args, n: int = 16) -> None:
    """Clean-latent (x0) MSE of the keyframe model and the T2I model on ``n`` training clips and ``n`` clips of
    the same case rendered from another seed: equal errors mean the model is not memorising its clips."""
    positions = torch.arange(NUM_KEYFRAMES, dtype=torch.float32) * FRAME_SKIP
    for name, seed in (("training clips", args.seed), ("held-out clips", args.seed + 12345)):
        videos, captions = render_clips(args.case, max(n, 4), seed, args.color, args.shape)
        latents = autoencoder.encode(videos[:n])
        hidden, mask = text_encoder(*text_encoder.tokenizer(captions[:n]))
        noise = torch.randn(latents.shape, generator=torch.Generator().manual_seed(0))
        row = []
        for t in (950, 900, 700, 400):
            tt = torch.full((latents.shape[0],), t)
            ab = scheduler.alphas_cumprod[t]
            x_t = scheduler.add_noise(latents, noise, tt)
            eps = model(x_t, tt, hidden, mask, frame_positions=positions)
            eps_t2i = torch.stack([unet(x_t[:, :, k], tt, hidden, mask) for k in range(x_t.shape[2])], dim=2)
            ours, t2i = ((x_t - (1 - ab).sqrt() * e) / ab.sqrt() for e in (eps, eps_t2i))
            row.append(f"t {t}: {(ours - latents).pow(2).mean():.3f} (T2I {(t2i - latents).pow(2).mean():.3f})")
        print(f"  x0 MSE on {n} {name}: " + ", ".join(row))


def print_velocities(model, text_encoder, args) -> None:
    """For each MotionBiasedAttention: its heads' bias strength and the velocity each reads from the 4 axis
    prompts, (rows, columns) in latent pixels per keyframe at that level ("right" should read (0, +))."""
    from minifusion.nn import MotionBiasedAttention

    prompts = [f"a {args.color} {args.shape} moves {d}" for d in AXIS]
    ids, mask = text_encoder.tokenizer(prompts)
    hidden, hidden_mask = text_encoder(ids, mask)
    for key, block in model.temporal_blocks.items():
        if isinstance(block.branch, MotionBiasedAttention):
            velocity = block.branch.velocity(hidden, hidden_mask)  # (4, heads, 2)
            read = "  ".join(f"{d} " + " ".join(f"({v[0]:+.2f},{v[1]:+.2f})" for v in velocity[i].tolist())
                             for i, d in enumerate(AXIS))
            print(f"  {key}: alpha {' '.join(f'{a:.2f}' for a in block.branch.alpha.tolist())};  {read}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, help="run folder (levers.csv, samples_*.png, state.pt)")
    parser.add_argument("--plot", type=Path, default=None, metavar="PNG",
                        help="instead of training: plot the learning curves of the run folders given after it")
    parser.add_argument("--inspect", type=Path, default=None, metavar="RUN",
                        help="instead of training: print what a run's (or a kept state_STEP.pt's) temporal parts do (branch norms, noise "
                        "error against the T2I model)")
    parser.add_argument("--ablate", choices=("text-attention", "motion-bias"), default=None,
                        help="with --inspect: also sample the checks with these layers' output zeroed "
                        "(RUN/ablate_NAME_STEP.png)")
    parser.add_argument("runs", type=Path, nargs="*", help="run folders to plot (with --plot)")
    parser.add_argument("--case", choices=("overfit", "simple", "starts", "wide"), default="overfit")
    parser.add_argument("--clips", type=int_at_least(4), default=256, help="clips of the simple, starts and wide cases")
    parser.add_argument("--steps", type=int_at_least(1), default=600)
    parser.add_argument("--batch-size", type=int_at_least(1), default=4)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--check-every", type=int_at_least(1), default=100)
    parser.add_argument("--samples", type=int_at_least(1), default=2, help="sampled videos per direction per check")
    parser.add_argument("--temporal", default="conv1d_attn1d_blocks", help="keyframe U-Net temporal variant")
    parser.add_argument("--spatiotemporal-size", type=int_at_least(0), default=0,
                        help="full spatio-temporal attention at levels at most this many pixels on a side (0 = off)")
    parser.add_argument("--temporal-text-size", type=int_at_least(0), default=0,
                        help="per-token text attention in the temporal parts (queries that know frame and pixel) "
                             "after the spatial cross-attention at levels at most this many pixels on a side (0 = off)")
    parser.add_argument("--motion-bias", action="store_true",
                        help="with --spatiotemporal-size: a text-conditioned relative-position bias in that attention "
                             "(each head reads a velocity from the text and attends along the displaced path)")
    parser.add_argument("--text-per-frame", action="store_true",
                        help="with --temporal-text-size: each keyframe reads the text tokens through its own embedding "
                             "(TemporalTextAttention's frame_text) instead of the same tokens for every keyframe")
    parser.add_argument("--train-spatial", action="store_true", help="train the T2I (spatial) weights too")
    parser.add_argument("--spatial-lr", type=float, default=None, help="their learning rate (default: --lr)")
    parser.add_argument("--spatial-params", choices=("all", "attention", "cross-attention"), default="all",
                        help="with --train-spatial: every T2I weight (default), the spatial blocks' attention layers "
                             "(self-attention and cross-attention to the text), or only their cross-attention")
    parser.add_argument("--lora-rank", type=int_at_least(0), default=0,
                        help="with --spatial-params attention or cross-attention: train a rank-R LoRA update of "
                             "those layers instead of their weights (0 = off, the default)")
    parser.add_argument("--loss-weight-cap", type=float, default=0.0,
                        help="weigh each sample's noise MSE by min(1 / alpha_bar_t, CAP), normalised to mean 1 over t "
                        "(KeyframesTask's 'v' weighting; high noise, where the layout is decided, weighs more); "
                        "0 = the plain noise MSE")
    parser.add_argument("--shared-noise", type=float, default=0.0,
                        help="variance share of the noise common to every keyframe of a clip, in training and in "
                        "the samples' initial noise (PYoCo's mixed prior, Ge et al. 2023); 0 = independent")
    parser.add_argument("--caption-dropout", type=float, default=0.1)
    parser.add_argument("--color", default="red")
    parser.add_argument("--shape", default="circle")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int_at_least(1), default=1)
    parser.add_argument("--checkpoint", type=Path, default=CHECKPOINT, help="folder with autoencoder, "
                        "text_encoder, unet, scheduler (default: data_samples/checkpoints/t2i-text-only)")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--keep-states", action="store_true",
                        help="also keep each check's state as OUT/state_STEP.pt (to sample or inspect it later)")
    args = parser.parse_args(argv)
    if args.motion_bias and not args.spatiotemporal_size:
        parser.error("--motion-bias needs --spatiotemporal-size N (the bias is added to that attention)")
    if args.lora_rank and not (args.train_spatial and args.spatial_params != "all"):
        parser.error(f"--lora-rank {args.lora_rank} needs --train-spatial with --spatial-params attention or "
                     "cross-attention (a LoRA of every T2I weight is not offered)")
    if args.ablate is not None and args.inspect is None:
        parser.error(f"--ablate {args.ablate} needs --inspect RUN (it samples a saved state)")
    if args.keep_states and args.out is None:
        parser.error("--keep-states needs --out RUN (a training run)")
    if args.inspect is not None:
        inspect_run(args.inspect, args.ablate)
        return 0
    if args.plot is not None:
        if not args.runs:
            parser.error("--plot needs run folders after it")
        plot_runs(args.plot, args.runs)
        return 0
    if args.out is None or args.runs:
        parser.error("give --out RUN to train (run folders are only for --plot)")
    torch.set_num_threads(args.threads)

    from minifusion.eval.word_flip import word_flip_effect
    from minifusion.training.checkpointing import atomic_write_bytes

    out = args.out
    if (out / "state.pt").is_file() and not args.resume:
        raise SystemExit(f"{out} already holds a run; pass --resume or choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    autoencoder, text_encoder, unet, scheduler = load_parts(args.checkpoint)
    videos, captions = render_clips(args.case, args.clips, args.seed, args.color, args.shape)
    with torch.no_grad():
        latents = torch.cat([autoencoder.encode(part) for part in videos.split(32)])  # (N, C, K, h, w), 32 clips a call
    args.latent_range = float(latents.abs().flatten().quantile(0.999))
    model = build_model(unet, args)
    params = [p for p in model.parameters() if p.requires_grad]
    temporal = set(map(id, model.temporal_parameters()))
    groups = [{"params": [p for p in params if id(p) in temporal], "lr": args.lr},
              {"params": [p for p in params if id(p) not in temporal], "lr": args.spatial_lr or args.lr}]
    optimizer = torch.optim.AdamW([g for g in groups if g["params"]], weight_decay=0.0)
    ids, mask = text_encoder.tokenizer(captions)
    with torch.no_grad():
        hidden, hidden_mask = text_encoder(ids, mask)  # (N, L, D)
        null, null_mask = text_encoder(ids, torch.zeros_like(mask))
    positions = torch.arange(NUM_KEYFRAMES, dtype=torch.float32) * FRAME_SKIP
    weights = torch.ones(scheduler.num_train_timesteps)
    if args.loss_weight_cap > 0:
        weights = (1 / scheduler.alphas_cumprod.double()).clamp(max=args.loss_weight_cap).float()
        weights = weights / weights.mean()
    step, rows, started = 0, [], time.perf_counter()
    if args.resume and (out / "state.pt").is_file():
        state = torch.load(out / "state.pt", weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step, rows = state["step"], state["rows"]
        torch.set_rng_state(state["rng"])
    else:
        torch.manual_seed(args.seed + 1)
    print(f"{args.case}: {len(captions)} clips, {sum(p.numel() for p in params):,} trainable parameters, "
          f"latent range {args.latent_range:.2f}", flush=True)
    losses, window = [], time.perf_counter()
    while step < args.steps:
        model.train()
        idx = torch.randperm(len(captions))[:args.batch_size]
        x0 = latents[idx]
        t = torch.randint(0, scheduler.num_train_timesteps, (len(idx),))
        noise = torch.randn_like(x0)  # (B, C, K, h, w)
        if args.shared_noise > 0:  # PYoCo's mixed noise prior: a part shared by every keyframe of a clip
            shared = torch.randn_like(x0[:, :, :1])
            noise = args.shared_noise ** 0.5 * shared + (1 - args.shared_noise) ** 0.5 * noise
        drop = torch.rand(len(idx)) < args.caption_dropout
        text = torch.where(drop[:, None, None], null[idx], hidden[idx])
        text_mask = torch.where(drop[:, None], null_mask[idx], hidden_mask[idx])
        prediction = model(scheduler.add_noise(x0, noise, t), t, text, text_mask, frame_positions=positions)
        loss = ((prediction - noise).pow(2).flatten(1).mean(1) * weights[t]).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        losses.append(loss.item())
        step += 1
        if step % args.check_every == 0 or step == args.steps:
            flips = word_flip_effect(model, text_encoder, scheduler, latents[:4], captions[:4],
                                     frame_positions=positions)
            report = sample_and_score(model, autoencoder, text_encoder, scheduler, args, step, out)
            row = {"step": step, "loss": sum(losses) / len(losses), "seconds": time.perf_counter() - window,
                   **{k: report[k] for k in ("direction_accuracy", "moving_fraction", "color_accuracy",
                                             "background_flicker")},
                   "found": " ".join(report["directions"])}
            row.update({f"flip_ratio_{r['t']}": r["error_ratio"] for r in flips})
            row.update({f"flip_change_{r['t']}": r["change"] for r in flips if r["t"] in (999, 850, 500)})
            rows.append(row)
            print(f"step {step}: loss {row['loss']:.4f}, direction {report['direction_accuracy']:.2f}, flip ratio "
                  + " ".join(f"t{r['t']}:{r['error_ratio']:.3f}" for r in flips) + f"  found: {row['found']}",
                  flush=True)
            with (out / "levers.csv").open("w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=COLUMNS)
                writer.writeheader()
                writer.writerows(rows)
            import io

            buffer = io.BytesIO()
            torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
                        "rows": rows, "rng": torch.get_rng_state(), "args": vars(args) | {"out": str(out)}}, buffer)
            atomic_write_bytes(out / "state.pt", buffer.getvalue())
            if args.keep_states:
                atomic_write_bytes(out / f"state_{step:05d}.pt", buffer.getvalue())
            losses, window = [], time.perf_counter()
    print(f"done: {step} steps, {time.perf_counter() - started:.0f} s this session", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
