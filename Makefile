# Two commands do all the set-up on a fresh machine with Python 3.11:
#   make run    creates .venv, installs the project, runs `kedro run` (search, evaluation, report)
#   make test   creates .venv, installs the project + test tools, runs the test suite
#   make test-fast   the fast tier for the inner loop (no end-to-end Kedro runs)
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
PIPELINE ?= __default__
ENV ?=
# pytest-xdist workers (default 2, one per core of the CI machine); 1 runs the suite in one
# process (docs/architecture.md#tests)
TEST_WORKERS ?= 2
XDIST = $(if $(filter 1,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --maxschedchunk 1)

.PHONY: install install-test run test test-fast viz mlflow-ui clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -e ".[test]"
	touch $@

install: $(VENV)/.installed

run: install
	$(BIN)/kedro run --pipelines=$(PIPELINE) $(if $(ENV),--env=$(ENV),)

test: install
	$(BIN)/python -m pytest tests -q $(XDIST)

test-fast: install
	$(BIN)/python -m pytest tests -q -m "not slow" $(XDIST)

viz: install
	$(BIN)/kedro viz run

# kedro-mlflow starts the `mlflow` executable: put the virtualenv first on PATH.
mlflow-ui: install
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/kedro mlflow ui

clean:
	rm -rf $(VENV)
