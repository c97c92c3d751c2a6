"""The small factorised video network behind the learned toy metrics, and their input contract.

FusionFrames (arXiv 2311.13073, section 5) measures videos with networks trained elsewhere:
I3D features for FVD, an Inception-style classifier for IS, CLIP for CLIPSIM. None can be
downloaded here, so ``minifusion.eval`` trains its own on Moving Shapes;
``AttributeClassifier`` and ``TextVideoModel`` both see videos through ``VideoEncoder``, four
streams (in the spirit of two-stream video networks, Simonyan and Zisserman 2014):

    video (B, 3, F, H, W) --prepare_video--> x (B, 3, 8, 64, 64) in [-1, 1]
    per frame: background = median of the border pixels; difference d = x - background;
               a = max_c |d|; mass = relu(a - 0.2) (where the shape is); mask = a / max(a), in [0, 1]
    motion:  moments of the mass: centroid (x, y), area, second moments (xx, yy, xy), and the
             centroid's change from the previous frame (dx, dy, |d|): how far it went     (B, 9, 8)
    shape:   the mask in a 32x32 window centred on the centroid -> 5 convs (BatchNorm, SiLU)
             -> mean and max over positions                                           (B, 128, 8)
    colour:  mask- and mask^2-weighted means of [x, d] over the window (no positions: shape-blind) (B, 12, 8)
    context: [x, d] of the whole frame at 16x16 -> 3 convs -> mean                     (B, 32, 8)
    each stream: two 3-tap convs over frames -> flatten in frame order -> Linear -> SiLU
    features = concat(color, shape, motion, context): (B, 16 + 32 + 32 + 16) = (B, 96)

Why factorised: the shape stream never sees colour (the mask is normalised per frame) and the
colour stream never sees shape (weighted means of pixel colours), so the classifier's colour and shape heads,
which read only their own stream, judge colour-shape pairs they never saw together (the held-out
split) as well as the seen ones; one entangled CNN scored 12% colour on held-out pairs while 100%
on seen ones. The motion stream works from the centroid because a small stack of (2+1)-D
convolutions needed far more than the CPU budget to learn the direction of motion. Frames stay in
order up to each stream's last linear layer, so a clip with shuffled frames gets other features
than the same clip in order (the FVD sanity test). BatchNorm runs in eval mode when measuring
(stored statistics), so a video's features never depend on the other videos of its batch.

Input contract (``prepare_video``): videos (B, 3, F, 64, 64) (one video (3, F, 64, 64) also works)
with values in ``value_range`` - (-1, 1), the package's range, by default; pass ``(0, 1)`` for
``FusionFramesPipeline(..., output_type="pt")`` output. The clip is taken to span the keyframes'
time span (source frames 0 to 28 at the toy defaults: 8 keyframes, 29 frames after one
interpolation pass, 113 after two), and ``NUM_FRAMES`` = 8 frames are picked at evenly spaced
positions ``round(linspace(0, F - 1, 8))``: exactly the keyframes for F = 8, 29 and 113, so metric
values are comparable across pipelines whatever their number of interpolation passes.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from minifusion.checks import check_int

NUM_FRAMES = 8  # frames every learned metric sees (the keyframes of a 29- or 113-frame video)
FRAME_SIZE = 64  # frame height and width the learned metrics were trained on
FOREGROUND_THRESHOLD = 0.2  # [-1, 1] units: smaller differences from the background are not the shape


def frame_indices(num_frames: int, target: int = NUM_FRAMES) -> list[int]:
    """``target`` evenly spaced frame indices of a ``num_frames``-frame video: round(linspace(0, F - 1, target))."""
    check_int("num_frames", num_frames, minimum=2, numpy=True, note="(a video needs at least 2 frames to show motion)")
    return [int(i) for i in np.rint(np.linspace(0, num_frames - 1, target))]


def prepare_video(video: torch.Tensor, *, value_range: tuple[float, float] = (-1.0, 1.0),
                  num_frames: int = NUM_FRAMES, size: int = FRAME_SIZE) -> torch.Tensor:
    """Videos as the learned metrics see them: (B, 3, num_frames, size, size) float32 in [-1, 1].

    Accepts (B, 3, F, H, W) or one video (3, F, H, W), numpy or torch, with values in ``value_range``;
    frames are picked by ``frame_indices``. Frames of another size than ``size`` are refused (the
    networks were trained on 64x64 Moving Shapes; resize them yourself if that is what you want).
    """
    if not torch.is_tensor(video):
        video = torch.as_tensor(np.asarray(video))
    if video.ndim == 4:
        video = video[None]
    if video.ndim != 5 or video.shape[1] != 3:
        raise ValueError(f"video must be (B, 3, F, H, W) or (3, F, H, W) RGB, got shape {tuple(video.shape)}")
    if tuple(video.shape[-2:]) != (size, size):
        raise ValueError(f"frames must be {size}x{size} pixels (what the metrics were trained on), got shape "
                         f"{tuple(video.shape)}")
    if video.shape[0] < 1:
        raise ValueError(f"need at least one video, got shape {tuple(video.shape)}")
    lo, hi = (float(v) for v in value_range)
    if not hi > lo:
        raise ValueError(f"value_range {value_range!r} must be (low, high) with high > low")
    x = video.detach().float()[:, :, frame_indices(video.shape[2], num_frames)]
    x = (x - lo) / (hi - lo) * 2 - 1  # [-1, 1]
    if not torch.isfinite(x).all():
        raise ValueError("video holds NaN or inf values")
    return x


def pixel_centres(size: int) -> torch.Tensor:
    """(2, size, size) x and y of pixel centres in [-1, 1] (``F.grid_sample``'s align_corners=False convention)."""
    ramp = (torch.arange(size, dtype=torch.float32) + 0.5) / size * 2 - 1
    return torch.stack([ramp[None, :].expand(size, -1), ramp[:, None].expand(-1, size)])


def foreground(frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Frames (N, 3, H, W) in [-1, 1] -> difference from the border-median background d (N, 3, H, W),
    mass relu(max_c |d| - FOREGROUND_THRESHOLD) (N, H, W) and the colour-blind mask max_c |d| / its
    frame maximum (at least FOREGROUND_THRESHOLD, so a blank frame stays near 0), in [0, 1] (N, H, W)."""
    border = torch.cat([frames[..., 0, :], frames[..., -1, :], frames[..., 1:-1, 0], frames[..., 1:-1, -1]], dim=-1)
    diff = frames - border.median(dim=-1).values[..., None, None]  # (N, 3, H, W)
    a = diff.abs().amax(dim=1)  # (N, H, W)
    peak = a.flatten(1).amax(dim=1).clamp(min=FOREGROUND_THRESHOLD)[:, None, None]
    return diff, F.relu(a - FOREGROUND_THRESHOLD), (a / peak).clamp(max=1.0)


def mass_moments(mass: torch.Tensor, coords: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """(N, 6) per frame: centroid x, y (frame centre when there is no foreground), area (share of the
    frame, x4), second central moments xx, yy, xy (x10): the shape's position, size and elongation."""
    total = mass.sum(dim=(-2, -1)) + eps  # (N,)
    cx = (mass * coords[0]).sum(dim=(-2, -1)) / total
    cy = (mass * coords[1]).sum(dim=(-2, -1)) / total
    dx, dy = coords[0] - cx[:, None, None], coords[1] - cy[:, None, None]  # (N, H, W)
    second = [(mass * a * b).sum(dim=(-2, -1)) / total for a, b in ((dx, dx), (dy, dy), (dx, dy))]
    return torch.stack([cx, cy, 4 * mass.mean(dim=(-2, -1)), *(10 * s for s in second)], dim=-1)


def conv_block(in_channels: int, out_channels: int, stride: int = 1) -> nn.Sequential:
    """3x3 conv -> BatchNorm -> SiLU on (N, C, H, W)."""
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1),
                         nn.BatchNorm2d(out_channels), nn.SiLU())


def with_velocity(moments: torch.Tensor, num_frames: int) -> torch.Tensor:
    """Per-frame moments (B*F, 6) -> (B, 9, F): the moments plus the centroid's change since the previous
    frame (dx, dy and its length, x4; frame 0 takes frame 1's), so the path length is a sum over frames."""
    m = rearrange(moments, "(b f) d -> b d f", f=num_frames)  # (B, 6, F)
    step = m[:, :2, 1:] - m[:, :2, :-1]  # (B, 2, F - 1)
    step = 4 * torch.cat([step[..., :1], step], dim=-1)  # (B, 2, F)
    return torch.cat([m, step, step.norm(dim=1, keepdim=True)], dim=1)


class FrameSequenceHead(nn.Module):
    """Per-frame vectors (B, D, F) -> two 3-tap convs over frames (SiLU) -> flatten in frame order -> Linear -> SiLU."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int, num_frames: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(in_dim, hidden, 3, padding=1)
        self.conv2 = nn.Conv1d(hidden, hidden, 3, padding=1)
        self.proj = nn.Linear(hidden * num_frames, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.silu(self.conv2(F.silu(self.conv1(x))))  # (B, hidden, F)
        return F.silu(self.proj(x.flatten(1)))


STREAMS = ("color", "shape", "motion", "context")  # order of the streams in the features


class VideoEncoder(nn.Module):
    """Prepared videos (B, 3, num_frames, size, size) in [-1, 1] -> features (B, out_dim); see the module docstring.

    ``block_out_channels``: widths of the shape window CNN's five 3x3 convolutions (strides 1, 2, 1, 2, 1);
    ``context_channels``: the whole-frame CNN's three; ``stream_dims``: each stream's output width, in
    ``STREAMS`` order.
    """

    def __init__(self, *, block_out_channels: tuple[int, ...] = (24, 32, 48, 64, 64),
                 context_channels: tuple[int, ...] = (16, 32, 32),
                 stream_dims: tuple[int, ...] = (16, 32, 32, 16), num_frames: int = NUM_FRAMES,
                 sample_size: int = FRAME_SIZE, window: int = 32) -> None:
        super().__init__()
        widths, context, dims = (tuple(int(c) for c in v) for v in (block_out_channels, context_channels, stream_dims))
        if (len(widths), len(context), len(dims)) != (5, 3, 4) or min(widths + context + dims) < 1:
            raise ValueError(f"need 5 block_out_channels, 3 context_channels and 4 stream_dims, all positive; got "
                             f"{block_out_channels!r}, {context_channels!r}, {stream_dims!r}")
        if not 8 <= window <= sample_size or sample_size % 4:
            raise ValueError(f"window {window} must be in [8, sample_size {sample_size}], sample_size a multiple of 4")
        self.num_frames, self.sample_size, self.window = num_frames, sample_size, window
        self.register_buffer("coords", pixel_centres(sample_size), persistent=False)  # (2, H, W)
        self.shape_cnn = nn.Sequential(*[conv_block(c_in, c_out, s) for c_in, c_out, s
                                         in zip((1,) + widths[:-1], widths, (1, 2, 1, 2, 1))])
        self.context_cnn = nn.Sequential(nn.AvgPool2d(4), conv_block(6, context[0]),
                                         conv_block(context[0], context[1], 2), conv_block(context[1], context[2], 2))
        self.temporal = nn.ModuleDict({  # each stream's convolutions over frames
            "color": FrameSequenceHead(12, 64, dims[0], num_frames),
            "shape": FrameSequenceHead(2 * widths[-1], 128, dims[1], num_frames),
            "motion": FrameSequenceHead(9, 64, dims[2], num_frames),
            "context": FrameSequenceHead(context[-1], 32, dims[3], num_frames),
        })
        self.stream_dims = dict(zip(STREAMS, dims))
        self.out_dim = sum(dims)

    def stream_slices(self) -> dict[str, slice]:
        """Where each stream lies in the features."""
        out, start = {}, 0
        for name in STREAMS:
            out[name] = slice(start, start + self.stream_dims[name])
            start += self.stream_dims[name]
        return out

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        b, c, f, h, w = video.shape
        if (c, f, h, w) != (3, self.num_frames, self.sample_size, self.sample_size):
            raise ValueError(f"VideoEncoder takes (B, 3, {self.num_frames}, {self.sample_size}, {self.sample_size}) "
                             f"videos in [-1, 1] (see prepare_video), got shape {tuple(video.shape)}")
        frames = rearrange(video, "b c f h w -> (b f) c h w")
        diff, mass, mask = foreground(frames)
        moments = mass_moments(mass, self.coords)  # (BF, 6)
        x = torch.cat([frames, diff, mask[:, None]], dim=1)  # (BF, 7, H, W)
        # the window: `window` pixels centred on the centroid (border pixels repeat beyond the frame)
        theta = torch.zeros(len(x), 2, 3, dtype=x.dtype, device=x.device)
        theta[:, 0, 0] = theta[:, 1, 1] = self.window / self.sample_size
        theta[:, :, 2] = moments[:, :2].detach()
        grid = F.affine_grid(theta, [len(x), 7, self.window, self.window], align_corners=False)
        crop = F.grid_sample(x, grid, align_corners=False, padding_mode="border")  # (BF, 7, window, window)
        shape = self.shape_cnn(crop[:, 6:])  # the mask only: colour-blind
        weight = crop[:, 6:]  # (BF, 1, window, window)
        colors = [(crop[:, :6] * w).sum(dim=(-2, -1)) / (w.sum(dim=(-2, -1)) + 1e-3) for w in (weight, weight**2)]
        per_frame = {  # (B, D, F) per stream
            "color": rearrange(torch.cat(colors, dim=1), "(b f) d -> b d f", b=b),  # averages: shape-blind
            "shape": rearrange(torch.cat([shape.mean(dim=(-2, -1)), shape.amax(dim=(-2, -1))], dim=1),
                               "(b f) d -> b d f", b=b),
            "motion": with_velocity(moments, f),
            "context": rearrange(self.context_cnn(x[:, :6]).mean(dim=(-2, -1)), "(b f) d -> b d f", b=b),
        }
        return torch.cat([self.temporal[name](per_frame[name]) for name in STREAMS], dim=1)  # (B, out_dim)


__all__ = ["FOREGROUND_THRESHOLD", "FRAME_SIZE", "NUM_FRAMES", "STREAMS", "FrameSequenceHead", "VideoEncoder",
           "conv_block",
           "foreground", "frame_indices", "mass_moments", "pixel_centres", "prepare_video", "with_velocity"]
