# Sanad Mesh — every command a developer or CI runs.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
GENERATED := sanad/v1/.generated
PROTOS := $(wildcard protos/sanad/v1/*.proto)
PYTEST_ARGS ?=

.PHONY: setup proto run test test-unit test-integration test-e2e lint format clean bench bench-full

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

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

test-unit: setup
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

test-integration: setup
	$(PY) -m pytest tests/integration $(PYTEST_ARGS)

test-e2e: setup
	$(PY) -m pytest tests/e2e $(PYTEST_ARGS)

# Benchmarks against ceilings measured in the same run; results under bench/results/.
bench: setup
	$(PY) -m bench --mode quick

bench-full: setup
	$(PY) -m bench --mode full

lint: setup
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/buf lint

format: setup
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) .data .pytest_cache .mypy_cache .ruff_cache *.egg-info
	rm -f sanad/v1/*_pb2.py sanad/v1/*_pb2_grpc.py sanad/v1/*_pb2.pyi $(GENERATED)
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
