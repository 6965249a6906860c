# descend: `make demo` runs the main job, `make test` runs the tests.
# Each creates .venv and installs what it needs; torch is pinned first so
# that nothing pulls a CUDA build.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed

.PHONY: demo test install lint bench clean

$(STAMP): pyproject.toml Makefile
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "torch==2.13.0"
	$(BIN)/pip install --quiet -e ".[dev,logging]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/descend tour

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/step_throughput.py --quick

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache runs
