# Two commands on a fresh clone: `make demo` and `make test`. Everything else is installed here.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python
# The suite mostly waits on servers: three workers on two cores, each taking whole test files
# (module fixtures and a file's order stay together). PYTEST_WORKERS=0 runs it in one process.
PYTEST_WORKERS ?= 3

.DEFAULT_GOAL := help
.PHONY: help demo demo-redis serve test test-redis-matrix lint types pytest docs docs-serve dist bench bench-quick clean

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
	$(BIN)/ruff check src tests examples bench

types: $(VENV)/.installed-dev  ## mypy --strict on src
	$(BIN)/mypy --strict src

pytest: $(VENV)/.installed-dev $(VENV)/.installed-docs  ## the test suite only (starts Redis, PostgreSQL, NATS, RabbitMQ and Kafka if needed)
	@bash .ci/services
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile

test: lint types docs pytest  ## lint, types, the strict docs build and the whole suite

# The Redis tests once per end of the supported redis-py range (pyproject.toml's dependency,
# quantum_core._redis.TESTED_REDIS_PY): a venv each under .venv, with only what they need.
REDIS_PY_MATRIX ?= 5.3.0 8.2.0
REDIS_TESTS := tests/integration/test_bus_redis*.py tests/unit/test_redis_replies.py \
	tests/unit/test_bus_consumer_path.py tests/faults/test_server_restart.py \
	tests/faults/test_server_loss.py tests/faults/test_outage_logging.py

test-redis-matrix:  ## the Redis tests on the lowest and the highest redis-py supported
	@bash .ci/services
	@set -e; for version in $(REDIS_PY_MATRIX); do \
		venv=$(VENV)/redis-py-$$version; \
		if [ ! -f $$venv/.installed ] || [ pyproject.toml -nt $$venv/.installed ]; then \
			$(PYTHON) -m venv $$venv; \
			$$venv/bin/python -m pip install --quiet -e . "redis==$$version" \
				'pytest>=8.0' 'pytest-asyncio>=0.24' 'hypothesis>=6.100'; \
			touch $$venv/.installed; \
		fi; \
		echo "redis-py $$version"; \
		$$venv/bin/python -m pytest -q -p no:cacheprovider $(REDIS_TESTS); \
	done

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
