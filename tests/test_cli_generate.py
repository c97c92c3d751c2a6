"""``python -m minifusion generate``: writes the GIF, reproducible by seed, clear errors for bad input."""

from __future__ import annotations

import importlib.util

import pytest
from PIL import Image
from test_pipeline import make_pipe

from minifusion.cli import main


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pipe") / "tiny"
    make_pipe().save_pretrained(folder)
    return folder


def gif_frames(path) -> int:
    with Image.open(path) as im:
        return im.n_frames


@pytest.mark.parametrize("passes, frames", [(0, 8), (1, 29)])
def test_generate_writes_a_gif_with_the_frames_of_each_pass(checkpoint, tmp_path, capsys, passes, frames):
    out = tmp_path / "demo.gif"
    rc = main(["generate", "a red circle moves right", "--out", str(out), "--checkpoint", str(checkpoint),
               "--passes", str(passes), "--steps", "2", "--no-progress"])
    assert rc == 0 and gif_frames(out) == frames
    text = capsys.readouterr().out
    assert str(out) in text and f"{frames} frames" in text and "generated in" in text


def test_same_seed_same_file_other_seed_other_file(checkpoint, tmp_path):
    def run(name, seed):
        out = tmp_path / name
        main(["generate", "a blue square moves left", "--out", str(out), "--checkpoint", str(checkpoint),
              "--passes", "0", "--steps", "2", "--seed", str(seed), "--no-progress"])
        return out.read_bytes()

    assert run("a.gif", 3) == run("b.gif", 3)
    assert run("a.gif", 3) != run("c.gif", 4)


@pytest.mark.parametrize("args, message", [
    (["--out", "no/such/folder/x.gif"], "the folder 'no/such/folder' does not exist"),
    (["--out", "x.png"], "must end in .gif"),
    (["--guidance", "nan"], "guidance 'nan' must be a finite number >= 0"),
    (["--guidance", "-2"], "guidance '-2' must be a finite number >= 0"),
    (["--steps", "0"], "must be an integer >= 1"),
    (["--passes", "3"], "invalid choice: 3"),
    (["--scheduler", "heun"], "invalid choice: 'heun'"),
])
def test_bad_arguments_are_refused_by_name(args, message, capsys):
    with pytest.raises(SystemExit) as e:
        main(["generate", "a red circle moves right", *args])
    assert e.value.code == 2 and message in capsys.readouterr().err


def test_a_missing_or_broken_checkpoint_names_the_problem(checkpoint, tmp_path, capsys):
    assert main(["generate", "a red circle", "--checkpoint", str(tmp_path / "nope"),
                 "--out", str(tmp_path / "x.gif")]) == 2
    assert "nope" in capsys.readouterr().err
    broken = tmp_path / "broken"
    broken.mkdir()
    for item in checkpoint.iterdir():
        target = broken / item.name
        target.symlink_to(item, target_is_directory=item.is_dir())
    (broken / "keyframe_unet").unlink()
    assert main(["generate", "a red circle", "--checkpoint", str(broken), "--out", str(tmp_path / "x.gif")]) == 2
    assert "keyframe_unet" in capsys.readouterr().err


@pytest.mark.skipif(importlib.util.find_spec("imageio_ffmpeg") is not None, reason="an MP4 writer is installed")
def test_mp4_without_a_writer_says_what_to_install(checkpoint, tmp_path, capsys):
    rc = main(["generate", "a red circle moves right", "--out", str(tmp_path / "x.gif"), "--mp4",
               "--checkpoint", str(checkpoint), "--passes", "0", "--steps", "1", "--no-progress"])
    assert rc == 2 and "pip install 'minifusion[video]'" in capsys.readouterr().err
    assert (tmp_path / "x.gif").is_file()  # the GIF is written before the MP4 is tried
