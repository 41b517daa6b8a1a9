# Two commands do all the set-up: `make demo` and `make test`.
# Both create (or reuse) the virtual environment in $(VENV) and install the pinned
# dependencies from requirements.txt; the install is redone only when that file changes.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cksum requirements.txt | cut -d' ' -f1)

.PHONY: install test demo lint bench clean-venv

install: $(STAMP)

$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

test: install
	$(PY) -m pytest -q tests

demo: install
	$(PY) -m mmer.demo

lint: install
	$(PY) -m ruff check mmer tests bench train.py evaluate.py

clean-venv:
	rm -rf $(VENV)
