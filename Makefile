# Two entry points that work on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: demo test install bench

$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements-dev.txt
	$(PY) -m pip install -q --no-deps -e .  # zoo, ui, trainers, bench importable from anywhere: no path hacks
	touch $@

install: $(VENV)/.installed

demo: install
	$(PY) app.py

test: install
	bash scripts/install_chromium.sh
	$(PY) -m pytest -q tests

bench: install
	$(PY) bench/solvers.py
