# Two commands on a fresh machine (Python 3.11 + package registries only):
#   make demo   - bootstrap .venv, then run the whole flow end to end on CPU with local Ray and local files
#   make test   - bootstrap .venv, then run the test suite
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
WORK ?= work/demo

.PHONY: demo demo-s3 test test-fast lint bench clean-venv

$(BIN)/python:
	@command -v $(PY) >/dev/null 2>&1 || { echo "error: $(PY) not found (set PY=/path/to/python3.11)"; exit 1; }
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# torch first and pinned (a CPU build; an unpinned torch pulls a multi-GB CUDA build), then the project.
$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install -q torch==2.13.0
	echo "torch==2.13.0" > $(VENV)/torch-pin.txt
	$(BIN)/pip install -q -c $(VENV)/torch-pin.txt -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/rmdepth demo --workdir $(WORK)

demo-s3: $(STAMP)
	$(BIN)/rmdepth demo --s3 --workdir $(WORK)-s3

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: $(STAMP)
	for f in benchmarks/bench_*.py; do $(BIN)/python $$f || exit 1; done

clean-venv:
	rm -rf $(VENV)
