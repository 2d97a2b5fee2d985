# The two commands the README names: `make serve` and `make test`.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# `make serve PORT=8765` when 8000 is taken
PORT ?= 8000
export NO_ALBUMENTATIONS_UPDATE := 1

.PHONY: venv runtime serve test lint bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# Runtime only: what a lab PC needs to identify and serve (no torch).
$(VENV)/.runtime: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

# Everything: training and the test tooling as well.
$(VENV)/.all: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q "torch==2.13.0"
	$(BIN)/pip install -q -e ".[train,dev]"
	touch $@ $(VENV)/.runtime

runtime: $(VENV)/.runtime

serve: $(VENV)/.runtime
	$(BIN)/gemid serve --host 127.0.0.1 --port $(PORT)

test: $(VENV)/.all
	bash scripts/browser-deps.sh || true
	$(BIN)/python -m pytest -q -rs; rc=$$?; [ $$rc -eq 5 ] && { echo "no tests collected"; exit 0; }; exit $$rc

lint: $(VENV)/.all
	$(BIN)/ruff check gemid tests bench

# Each benchmark prints its figures; see the README for what they measure.
bench: $(VENV)/.all
	for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache
