"""Sanity checks of the shipped learned metrics (data_samples/checkpoints/eval) that a broken metric would fail.

- the attribute classifier is accurate on held-out clips (colour-shape pairs never seen in training);
- FVD analogue: two disjoint sets of real clips are close, the same clips with shuffled frame order
  are farther, noise is farthest;
- CLIPSIM analogue: matching captions score higher than mismatched ones, and retrieval works;
- no metric value depends on the batch size, and a 29-frame video in [0, 1] is measured like its
  8 keyframes in [-1, 1].
"""

from __future__ import annotations

import pytest
import torch

from minifusion.eval import ATTRIBUTES, ToyMetrics, labelled_clips, shuffle_frames
from minifusion.eval.train_metrics import classifier_accuracy, text_video_scores


@pytest.fixture(scope="module")
def metrics() -> ToyMetrics:
    return ToyMetrics.from_pretrained()


@pytest.fixture(scope="module")
def heldout() -> dict:
    return labelled_clips("heldout", 64, seed=0)


def test_classifier_is_accurate_on_held_out_pairs(metrics, heldout):
    acc = classifier_accuracy(metrics.classifier, heldout)
    low = {name: acc[name] for name in ATTRIBUTES if acc[name] < 0.95}
    assert not low, f"held-out accuracy below 95% on 64 clips: {low}"


def test_fvd_real_sets_close_shuffled_frames_farther_noise_farthest(metrics):
    a = metrics.measure(labelled_clips("val", 48, seed=0)["video"])
    other = labelled_clips("val", 48, seed=1)["video"]  # disjoint clips: another seed
    b, shuffled = metrics.measure(other), metrics.measure(shuffle_frames(other))
    noise = metrics.measure(torch.rand(48, 3, 8, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1)
    real, mixed, random = metrics.fvd(a, b), metrics.fvd(a, shuffled), metrics.fvd(a, noise)
    assert real < 0.5 * mixed < 0.5 * random, (real, mixed, random)


def test_matching_captions_score_higher_than_mismatched(metrics):
    clips = labelled_clips("heldout", 64, seed=0, single_shape=False)
    scores = text_video_scores(metrics.text_video, clips)
    assert scores["margin"] > 0.3, scores
    assert scores["matched_beats_mismatched"] >= 0.95, scores
    assert scores["retrieval_video_to_text"] >= 0.5, scores


def test_caption_accuracy_is_high_for_real_clips_and_low_for_other_prompts(metrics, heldout):
    m, prompts = metrics.measure(heldout["video"][:32]), heldout["caption"][:32]
    right = metrics.caption_accuracy(m, prompts)
    assert right["num_judged"] > 0 and right["mean"] >= 0.95 and right["caption"] >= 0.8, right
    # the mean is the plain average of the per-attribute shares, its chance level that of uniform guessing
    named = [n for n in ATTRIBUTES if n in right]
    assert right["mean"] == pytest.approx(sum(right[n] for n in named) / len(named))
    assert right["mean_chance"] == pytest.approx(sum(1 / len(ATTRIBUTES[n]) for n in named) / len(named))
    wrong = metrics.caption_accuracy(m, prompts[5:] + prompts[:5])  # each clip judged against another prompt
    assert wrong["caption"] < right["caption"] and wrong["mean"] < right["mean"] - 0.2, (right, wrong)


def test_values_do_not_change_with_batch_size(metrics, heldout):
    videos = heldout["video"][:24]
    whole = metrics.measure(videos, batch_size=24)
    for batch_size in (1, 5):
        part = metrics.measure(videos, batch_size=batch_size)
        assert torch.allclose(part.features, whole.features, atol=1e-5)
        assert torch.allclose(part.embeddings, whole.embeddings, atol=1e-5)
        for name, p in part.probabilities.items():
            assert torch.allclose(p, whole.probabilities[name], atol=1e-5)
    one = metrics.measure(videos[3:4])  # a video alone == in its batch
    assert torch.allclose(one.features[0], whole.features[3], atol=1e-5)
    half = metrics.measure(videos[:12], batch_size=4)
    prompts = heldout["caption"][:24]
    assert metrics.clipsim(half, prompts[:12]) == pytest.approx(
        metrics.clipsim(whole.subset(list(range(12))), prompts[:12]), abs=1e-5)


def test_29_frames_in_0_1_are_measured_as_their_keyframes(metrics):
    from minifusion.data import MovingShapes

    ds = MovingShapes("val", num_frames=29, frame_skip=1, seed=0, length=4)
    long = torch.stack([ds[i]["video"] for i in range(4)])  # (4, 3, 29, 64, 64) in [-1, 1]
    keyframes = long[:, :, ::4]  # the frames 0, 4, ..., 28 the metrics pick
    a = metrics.measure((long + 1) / 2, value_range=(0, 1))
    b = metrics.measure(keyframes)
    assert torch.allclose(a.features, b.features, atol=1e-5)


def test_bad_videos_are_refused_by_name(metrics):
    with pytest.raises(ValueError, match="64x64"):
        metrics.measure(torch.zeros(2, 3, 8, 32, 32))
    with pytest.raises(ValueError, match=r"\(B, 3, F, H, W\)"):
        metrics.measure(torch.zeros(2, 8, 64, 64))
    with pytest.raises(ValueError, match="at least 2 frames"):
        metrics.measure(torch.zeros(2, 3, 1, 64, 64))
    with pytest.raises(ValueError, match="one prompt per video"):
        metrics.clipsim(metrics.measure(torch.zeros(2, 3, 8, 64, 64)), ["a red circle moves right"])
