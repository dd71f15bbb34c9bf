# Two commands do all the set-up on a fresh machine:
#   make demo   -> synthetic slide, a quickly trained small model, inference, counts and F1
#   make test   -> installs everything, lints, runs the test suite
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
DEMO   ?= demo

.PHONY: install test lint demo clean

$(BIN)/wsi-ihc: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade --quiet pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/wsi-ihc

lint: install
	$(BIN)/ruff check wsi_ihc tests benchmarks studies
	$(BIN)/ruff format --check wsi_ihc tests benchmarks studies

test: install lint
	$(BIN)/pytest -q

demo: install
	$(BIN)/python -m wsi_ihc.cli.demo --out $(DEMO)

clean:
	rm -rf $(DEMO) .pytest_cache
