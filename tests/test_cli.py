"""The command line: --help answers, the demo writes what it prints, bad input gets a clear error."""

from __future__ import annotations

import subprocess
import sys

import pytest
from PIL import Image

from minifusion.cli import build_parser, main


def test_help_lists_subcommands(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "demo" in out and "render" in out


@pytest.mark.parametrize("command", ["demo", "render"])
def test_each_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as e:
        main([command, "--help"])
    assert e.value.code == 0
    assert "--out" in capsys.readouterr().out


def test_demo_writes_the_files_it_prints(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "out"), "--num", "2"]) == 0
    printed = [line.split()[0] for line in capsys.readouterr().out.splitlines() if line.startswith(str(tmp_path))]
    assert len(printed) == 4  # 2 clips, the noising GIF and its strip
    for path in printed:
        assert (tmp_path / "out").joinpath(path.rsplit("/", 1)[-1]).is_file()
    with Image.open(tmp_path / "out" / "forward_noising.gif") as gif:
        assert gif.n_frames == 24


def test_render_writes_a_captions_file_that_clip_folder_reads(tmp_path):
    from minifusion.data import ClipFolder

    assert main(["render", "--out", str(tmp_path), "--num", "3", "--frames", "8", "--split", "heldout"]) == 0
    folder = ClipFolder(tmp_path, num_frames=8)
    assert len(folder) == 3
    assert folder[0]["video"].shape == (3, 8, 64, 64)


def test_bad_split_is_a_clear_error(tmp_path, capsys):
    assert main(["render", "--out", str(tmp_path), "--split", "test"]) == 2
    err = capsys.readouterr().err
    assert "'test'" in err and "heldout" in err


def test_bad_number_is_rejected_by_the_parser(capsys):
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(["demo", "--num", "0"])
    assert e.value.code == 2
    assert "must be an integer >= 1" in capsys.readouterr().err


def test_module_entry_point_runs():
    result = subprocess.run([sys.executable, "-m", "minifusion", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "demo" in result.stdout
