# Sanad Mesh — every command a developer or CI runs.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
GENERATED := sanad/v1/.generated
PROTOS := $(wildcard protos/sanad/v1/*.proto)
PYTEST_ARGS ?=
# Test processes (pytest-xdist): the suite mostly waits (on brokers, servers starting, timeouts
# it provokes), so four share two cores well; 0 runs it in this one process.
TEST_WORKERS ?= 4

.PHONY: setup proto run test test-unit test-integration test-e2e lint format clean bench bench-full compose-up compose-down certs demo

setup: $(INSTALLED) $(GENERATED)

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

proto: $(GENERATED)

$(GENERATED): $(PROTOS) $(INSTALLED)
	rm -f sanad/v1/*_pb2.py sanad/v1/*_pb2_grpc.py sanad/v1/*_pb2.pyi
	$(PY) -m grpc_tools.protoc -I protos \
		--python_out=. --grpc_python_out=. --pyi_out=. $(PROTOS)
	touch $@

run: setup
	$(PY) -m sanad.devstack

# Needs `make run` in another terminal: loads Ad Dakhiliyah 2023-2024 through the batch queue
# (2.5 to 7 minutes here), then prints the 2024 governorate report and award leaderboard.
# sanadctl acts as the admin `make run` issued (its settings are in $(CLIENT_ENV)).
CLIENT_ENV := $(or $(SANAD_DEVSTACK_DATA),.data)/sanadctl.env
demo: setup
	@test -f $(CLIENT_ENV) || { echo "demo: start 'make run' first (no $(CLIENT_ENV))"; exit 1; }
	@. $(CLIENT_ENV) && $(PY) -m sanad.cli --timeout 10 health || { \
	  echo "demo: 'make run' does not answer (sanadctl health); start it, or wait until it serves"; \
	  exit 1; }
	. $(CLIENT_ENV) && \
	$(PY) -m sanad.cli --timeout 60 seed --governorate DA --years 2023,2024 && \
	$(PY) -m sanad.cli --timeout 60 report --governorate DA --year 2024 && \
	$(PY) -m sanad.cli --timeout 60 leaderboard --governorate DA --year 2024 --limit 10

# Development CA, service and client certificates and JWT keys under .certs/, or
# SANAD_DEVSTACK_CERTS (`make run`
# creates them too when they are missing).
certs: setup
	$(PY) -m sanad.devstack.certs

test: setup
	$(PY) -m pytest -n $(TEST_WORKERS) $(PYTEST_ARGS)

test-unit: setup
	$(PY) -m pytest tests/unit -n $(TEST_WORKERS) $(PYTEST_ARGS)

test-integration: setup
	$(PY) -m pytest tests/integration -n $(TEST_WORKERS) $(PYTEST_ARGS)

test-e2e: setup
	$(PY) -m pytest tests/e2e -n $(TEST_WORKERS) $(PYTEST_ARGS)

# Benchmarks against ceilings measured in the same run; results under bench/results/<mode>/.
bench: setup
	$(PY) -m bench --mode quick

bench-full: setup
	$(PY) -m bench --mode full

# The full stack in containers (needs a Docker engine); see deploy/README.md.
COMPOSE := docker compose -f deploy/compose/compose.yaml

compose-up:
	$(COMPOSE) up --build --detach --wait

compose-down:
	$(COMPOSE) down

# Proto changes must not break callers built against BUF_AGAINST: by default the local main
# branch, so on main the edits not yet committed are checked and on a branch all of its own;
# where there is no local main (a detached or single-branch checkout), the commit checked out.
BUF_AGAINST ?= .git\#$(if $(shell git rev-parse -q --verify refs/heads/main 2>/dev/null),branch=main,ref=HEAD)

lint: setup
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/buf lint
	@if [ -e .git ]; then $(VENV)/bin/buf breaking --against '$(BUF_AGAINST)'; \
	else echo "lint: not a git checkout, so no base to compare the protos with: buf breaking skipped"; fi

format: setup
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) .data .pytest_cache .mypy_cache .ruff_cache *.egg-info
	rm -f sanad/v1/*_pb2.py sanad/v1/*_pb2_grpc.py sanad/v1/*_pb2.pyi $(GENERATED)
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
