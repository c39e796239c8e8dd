PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
PIP     := $(BIN)/python -m pip install -q -c constraints.txt
STAMP   := $(VENV)/.installed
DEVSTAMP:= $(VENV)/.installed-dev
API_OUT ?= docs/api
# the public modules of the API reference (each package's __all__ says what it exports)
API_MODULES := deepmetric deepmetric.distances deepmetric.losses deepmetric.miners \
	deepmetric.samplers deepmetric.tuples deepmetric.data deepmetric.models deepmetric.training \
	deepmetric.evaluation deepmetric.search deepmetric.roc deepmetric.index deepmetric.sklearn \
	deepmetric.config deepmetric.runs deepmetric.report deepmetric.serve deepmetric.explain

.PHONY: demo test bench lint docs clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml constraints.txt
	$(PIP) torch==2.13.0
	$(PIP) -e .
	touch $@

$(DEVSTAMP): $(STAMP)
	$(PIP) -e ".[dev]"
	touch $@

demo: $(STAMP)
	$(BIN)/deepmetric demo

test: $(DEVSTAMP)
	$(BIN)/python -m pytest; rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; exit 0; fi; exit $$rc

bench: $(DEVSTAMP)
	$(BIN)/deepmetric bench

docs: $(DEVSTAMP)
	$(BIN)/pdoc -o $(API_OUT) $(API_MODULES)
	@echo "API reference: $(API_OUT)/index.html"

lint: $(DEVSTAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy src

clean:
	rm -rf $(VENV) runs build docs/api *.egg-info src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
