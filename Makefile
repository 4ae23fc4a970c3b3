# The two set-up commands: `make demo` and `make test`. Both work from a fresh clone.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
# Pinned so pip takes the CPU wheel on disk instead of a multi-GB CUDA build.
TORCH  := torch==2.13.0

.PHONY: demo test lint bench clean install

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q $(TORCH)
	$(PIP) install -q -e '.[all]'
	touch $@

install: $(VENV)/.installed

demo: install
	$(PY) -m archlang.demo

test: install
	$(PY) -m pytest

lint: install
	$(VENV)/bin/ruff check .

bench: install
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) out build *.egg-info
