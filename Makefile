# Two commands on a fresh clone: `make demo` and `make test`. Everything else is installed here.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python
# The suite mostly waits on servers: three workers on two cores, each taking whole test files
# (module fixtures and a file's order stay together). PYTEST_WORKERS=0 runs it in one process.
PYTEST_WORKERS ?= 3

.DEFAULT_GOAL := help
.PHONY: help demo demo-redis serve test test-matrix lint types pytest docs docs-serve dist bench bench-quick clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 14

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# One stamp per set of extras, redone when pyproject.toml changes.
$(VENV)/.installed-core: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e .
	@touch $@
$(VENV)/.installed-dev: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@ $(VENV)/.installed-core
$(VENV)/.installed-docs: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[docs]'
	@touch $@

demo: $(VENV)/.installed-core  ## run the three-domain trading flow in memory (no server needed)
	$(PY) -m examples.trading.run --bus memory://

demo-redis: $(VENV)/.installed-dev  ## the same flow as four processes, one per domain, on the local Redis
	@bash .ci/services
	$(PY) -m examples.trading.split --bus redis://127.0.0.1:6379/0

$(VENV)/.installed-examples: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[examples]'
	@touch $@

serve: $(VENV)/.installed-examples  ## the guide's FastAPI service on http://127.0.0.1:8000 (local Redis)
	@bash .ci/services
	$(PY) -m examples.trading.app

lint: $(VENV)/.installed-dev  ## ruff
	$(BIN)/ruff check src tests examples bench noxfile.py

types: $(VENV)/.installed-dev  ## mypy --strict on src
	$(BIN)/mypy --strict src

pytest: $(VENV)/.installed-dev $(VENV)/.installed-docs  ## the test suite only (starts Redis, PostgreSQL, NATS, RabbitMQ and Kafka if needed)
	@bash .ci/services
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile

test: lint types docs pytest  ## lint, types, the strict docs build and the whole suite

# The supported versions (noxfile.py): Python 3.11, 3.12 and 3.13, each with the lowest and
# the highest redis-py supported, running the unit, contract and Redis suites; a venv each
# under .nox, kept between runs. The interpreters: on PATH, or pyenv's (as on our machines).
# CI runs every session (.ci/run). One alone, the interpreters on PATH as below:
# `.venv/bin/nox -s "tests-3.12(lowest)"`.
PYENV_PYTHONS := $(shell ls -d $(HOME)/.pyenv/versions/3.1[123].*/bin 2>/dev/null | tr '\n' :)

test-matrix: $(VENV)/.installed-dev  ## unit, contract and Redis suites on Python 3.11-3.13 x lowest/highest redis-py (what CI runs)
	@bash .ci/services
	PATH="$(PYENV_PYTHONS)$$PATH" $(BIN)/nox

dist: $(VENV)/.installed-dev  ## the sdist and the wheel (from the sdist) into dist/, checked by twine
	rm -rf dist
	$(PY) -m build --no-isolation --outdir dist .
	$(PY) -m twine check --strict dist/*

$(VENV)/.installed-bench: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	@touch $@ $(VENV)/.installed-dev $(VENV)/.installed-core

bench: $(VENV)/.installed-bench  ## every benchmark, 5 runs, vs raw redis-py, FastStream and the guide (own redis-server)
	$(PY) bench/run.py

bench-quick: $(VENV)/.installed-bench  ## the same, one short run each (< 2 min); writes bench/results/bench-quick.*
	$(PY) bench/run.py --quick

docs: $(VENV)/.installed-docs  ## build the docs strictly into site/
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

docs-serve: $(VENV)/.installed-docs  ## serve the docs on http://127.0.0.1:8000
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve

clean:  ## remove the virtualenv and build output
	rm -rf $(VENV) site build dist .pytest_cache .mypy_cache .ruff_cache
