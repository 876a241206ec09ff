# Every workflow step is a target here, so CI and a laptop run the same commands.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
# `make setup TF=gpu` installs the CUDA-enabled TensorFlow instead of the CPU build.
TF ?= cpu
STAMP := $(VENV)/.installed-$(TF)

export MLFLOW_DISABLE_TELEMETRY := true
export GX_ANALYTICS_ENABLED := false
export DVC_NO_ANALYTICS := true
export TF_CPP_MIN_LOG_LEVEL := 2

.PHONY: setup repro test lint typecheck unit lock clean-venv

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip==26.3"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[$(TF),dev]"
	rm -f $(VENV)/.installed-*
	touch $@

repro: setup
	$(BIN)/dvc repro

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy

test: setup lint typecheck
	$(BIN)/pytest

# Regenerate the pins after changing a direct dependency in pyproject.toml.
lock: setup
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^-e ' > constraints.txt

clean-venv:
	rm -rf $(VENV)
