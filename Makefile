# Every workflow step is a target here, so CI and a laptop run the same commands.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
# `make setup TF=gpu` installs the CUDA-enabled TensorFlow instead of the CPU build.
TF ?= cpu
STAMP := $(VENV)/.installed-$(TF)

# Every target (and every process it starts: DVC stages, queued-experiment workers, scripts)
# finds the venv's python, dvc and mlflow first, whether or not a venv is activated.
export PATH := $(abspath $(BIN)):$(PATH)

export MLFLOW_DISABLE_TELEMETRY := true
export GX_ANALYTICS_ENABLED := false
export DVC_NO_ANALYTICS := true
export TF_CPP_MIN_LOG_LEVEL := 3
export MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR := false

.PHONY: setup repro test lint typecheck unit lock clean-venv

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip==26.3"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[$(TF),dev]"
	rm -f $(VENV)/.installed-*
	touch $@

# `dvc repro`, then how its outputs compare with the commit's (pipeline/verify.py).
repro: setup
	$(BIN)/dvc repro
	$(BIN)/python -m pipeline.verify

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy

# The suite in parallel, one file per worker at a time (module fixtures are built once), one
# worker per core up to 4: most of its time is spent waiting on `dvc repro`, servers and
# TensorFlow's import in subprocesses. `make test TEST_WORKERS=0` runs it in one process.
TEST_WORKERS ?= auto
test: setup lint typecheck
	$(BIN)/pytest -n $(TEST_WORKERS) --maxprocesses 4 --dist loadfile --durations 20

# Regenerate the pins after changing a direct dependency in pyproject.toml.
lock: setup
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^-e ' > constraints.txt

clean-venv:
	rm -rf $(VENV)

# CI retraining (.github/workflows/retrain.yml runs these same targets). The scripts take their
# inputs from the environment, so values never pass through make's own expansion:
#   make retrain PARAMS_OVERRIDES="train.units=512 train.epochs=50"   (else plain `dvc repro`)
#   make metrics-report BASE_REV=main                                 (default HEAD)
#   make compare COMPARE_ARGS="--last 5"
.PHONY: retrain metrics-report dvc-pull compare lint-workflows

retrain: setup
	scripts/retrain.sh

metrics-report: setup
	scripts/metrics_report.sh "$${BASE_REV:-HEAD}"

dvc-pull: setup
	scripts/dvc_pull.sh

compare: setup
	$(BIN)/python -m pipeline.compare $(if $(SWEEP),--sweep $(SWEEP)) $(COMPARE_ARGS)

# Queue every point of sweeps/$(SWEEP).yaml as a DVC experiment, run two at a time, wait:
#   make sweep SWEEP=defaults        then   make compare SWEEP=defaults   (ranked)
.PHONY: sweep
sweep: setup
	$(BIN)/python -m pipeline.sweep $(SWEEP)

# Schema check (catches misspelled keys, wrong types) and security audit; both work offline.
lint-workflows: setup
	$(BIN)/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml
	$(BIN)/zizmor --offline --quiet .github/workflows

# Team mode (docs/team.md): a shared MLflow server on PostgreSQL with basic auth,
# in the foreground; and a shared DVC remote on S3 (or MinIO), credentials from the environment:
#   make tracking-server                      (TRACKING_PORT, POSTGRES_PORT, TEAM_DIR to move it)
#   make dvc-remote-s3 URL=s3://bucket/path ENDPOINT=http://minio:9000   (ENDPOINT optional)
.PHONY: tracking-server dvc-remote-s3

tracking-server: setup
	scripts/tracking_server.sh

# No `setup` here: it only writes .dvc/config.local (and says so when dvc is missing).
dvc-remote-s3:
	scripts/dvc_remote_s3.sh

# Serve a registered generator behind nginx (docs/serving.md), in the foreground, until Ctrl-C;
# the model from MLFLOW_TRACKING_URI (default mlflow.db), values passed through the environment:
#   make serve MODEL=models:/charlstm-macbeth-generator@champion     (SERVE_PORT, default 5001)
.PHONY: serve
serve: setup
	MODEL="$$MODEL" scripts/serve.sh

# Vega assets for `dvc plots show` offline (.dvc/plots-template.html loads them); needs npm.
.PHONY: plots-assets
plots-assets:
	scripts/plots_assets.sh
