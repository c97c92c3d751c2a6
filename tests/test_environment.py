"""The pip path (requirements.txt) and the conda path (environment.yml) install the same toolchain."""

from __future__ import annotations

import re
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]
TOOLCHAIN = {"torch", "jupyterlab", "ipywidgets", "nbval", "matplotlib", "einops", "tqdm"}


def _requirements() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"requirements.txt line {line!r} is not pinned with =="
            pins[name.strip().lower()] = version.strip()
    return pins


def _environment_pip_lines() -> list[str]:
    # A tiny reader for our own flat environment.yml (no YAML dependency needed).
    lines, in_pip = [], False
    for raw in (ROOT / "environment.yml").read_text().splitlines():
        text = raw.split("#", 1)[0].rstrip()
        if not text.strip():
            continue
        if text.strip() == "- pip:":
            in_pip = True
            continue
        if in_pip:
            if raw.startswith("      - "):
                lines.append(text.strip()[2:].strip())
            else:
                in_pip = False
    return lines


def test_requirements_pin_the_toolchain():
    pins = _requirements()
    assert TOOLCHAIN <= set(pins), f"missing pins: {TOOLCHAIN - set(pins)}"
    assert pins["torch"] == "2.13.0"
    assert pins["jupyterlab"].startswith("4.") and pins["ipywidgets"].startswith("8.")


def test_environment_yml_installs_the_same_packages_as_pip():
    pip_lines = _environment_pip_lines()
    assert "-r requirements.txt" in pip_lines, pip_lines
    assert "-e ." in pip_lines, pip_lines
    # Anything else listed in environment.yml must agree with requirements.txt exactly.
    pins = _requirements()
    for line in pip_lines:
        if line.startswith("-"):
            continue
        name, _, version = line.partition("==")
        assert pins.get(name.lower()) == version, f"environment.yml pins {line!r}, requirements.txt {pins.get(name)!r}"
    text = (ROOT / "environment.yml").read_text()
    conda_deps = re.findall(r"^  - ([a-zA-Z0-9_.-]+)(?:[=<>].*)?$", text, flags=re.M)
    assert "python" in conda_deps and "pip" in conda_deps
    # torch etc. come from pip (the same wheels as the Makefile), never also from conda.
    assert not (TOOLCHAIN & set(conda_deps)), conda_deps


def test_pyproject_ranges_admit_the_pins():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = _requirements()
    for dep in meta["dependencies"]:
        name, lower = re.match(r"([A-Za-z0-9_.-]+)>=([0-9.]+)", dep).groups()
        assert name.lower() in pins, f"{name} is a dependency but not pinned in requirements.txt"
        pinned = tuple(int(x) for x in pins[name.lower()].split(".")[:2])
        assert pinned >= tuple(int(x) for x in lower.split(".")[:2]), (name, pins[name.lower()], lower)


def test_makefile_and_ci_use_the_pins():
    makefile = (ROOT / "Makefile").read_text()
    assert "-r requirements.txt" in makefile
    assert "make test" in (ROOT / ".ci" / "run").read_text()
