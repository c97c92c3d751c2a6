# minifusion: two commands set up a fresh machine.
#   make demo   - create .venv if missing, install pinned deps + package, text -> video from the shipped checkpoint
#   make test   - same set-up, then ruff (make lint), unit tests and every notebook (FAST mode) under nbval
#   make lab    - JupyterLab on notebooks/ with the project's kernel
#   make test-browser - notebooks 00 and 11 run in JupyterLab in headless Chromium; pictures in outputs/browser/
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.minifusion-installed
BROWSER_STAMP := $(VENV)/.minifusion-browser-installed
# pytest workers; notebooks and tests are independent. 'make test JOBS=1' for a serial run.
JOBS   ?= 2
# JupyterLab refuses to run as root unless told (containers, CI images); LAB_ARGS adds e.g. --port.
LAB_ARGS ?= $(if $(filter 0,$(shell id -u)),--allow-root,)

.PHONY: setup lint demo test test-unit test-notebooks test-browser lab clean help

help:
	@echo "make demo | make test | make test-browser | make lab | make clean"

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements.txt
	$(PY) -m pip install --disable-pip-version-check -q --no-deps -e .
	$(PY) -m ipykernel install --sys-prefix --name minifusion --display-name "Python (minifusion)" >/dev/null
	@touch $(STAMP)

# the default shipped pipeline, whose keyframe model follows the prompted motion (its README.md is the card)
DEMO_CHECKPOINT ?= data_samples/checkpoints/moving-shapes-motion

demo: $(STAMP)
	mkdir -p outputs
	$(PY) -m minifusion generate "a red circle moves right" --out outputs/demo.gif --seed 0 --checkpoint $(DEMO_CHECKPOINT)
	$(PY) -m minifusion generate "a green square moves up" --out outputs/demo_113_frames.gif --passes 2 --seed 0 --checkpoint $(DEMO_CHECKPOINT)

LINTED := minifusion tests tests_browser benchmarks scripts

lint: $(STAMP)
	$(VENV)/bin/ruff check $(LINTED)

test: $(STAMP) lint
	MINIFUSION_FAST=1 MPLBACKEND=Agg $(PY) -m pytest -n $(JOBS) --dist loadfile -q \
		tests notebooks --nbval-lax --nbval-current-env -p no:cacheprovider

test-unit: $(STAMP)
	MPLBACKEND=Agg $(PY) -m pytest -q tests

test-notebooks: $(STAMP)
	MINIFUSION_FAST=1 MPLBACKEND=Agg $(PY) -m pytest -n $(JOBS) -q notebooks --nbval-lax --nbval-current-env

# Chromium from the OS packages and Playwright (requirements-browser.txt), each only if missing;
# then JupyterLab + headless Chromium run notebooks 00 and 11 and check what the page shows.
$(BROWSER_STAMP): requirements-browser.txt $(STAMP)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements-browser.txt
	@touch $(BROWSER_STAMP)

test-browser: $(BROWSER_STAMP)
	bash tests_browser/install_chromium.sh
	$(PY) -m pytest -v -rs -p no:cacheprovider tests_browser

lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks $(LAB_ARGS)

clean:
	rm -rf $(VENV) outputs .pytest_cache
