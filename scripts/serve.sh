#!/usr/bin/env bash
# Serve a registered generator for others to call, in the foreground, until Ctrl-C:
#
#   make serve MODEL=models:/charlstm-macbeth-generator@champion      # http://127.0.0.1:5001
#   SERVE_PORT=8080 make serve MODEL=models:/charlstm-macbeth-generator/3
#
# `mlflow models serve` runs on a private port of 127.0.0.1, behind nginx (Debian's `nginx`,
# `libnginx-mod-http-lua` and `lua-cjson`) on SERVE_PORT. MLflow's scoring server reads and
# parses a whole body before the model sees it; nginx refuses, before that, a body over 8 MB
# (413), a missing Content-Type (415), JSON that is nested too deep or holds an unknown key or
# param (400, naming it and the accepted ones, read from the model's signature), and more than
# SERVE_MAX_IN_FLIGHT requests at once (503 with Retry-After): scripts/nginx/serve.conf.
# The model comes from MLFLOW_TRACKING_URI (default: this repository's mlflow.db).
# For a quick local look, `mlflow models serve` alone does too (docs/serving.md); this is the way to serve.
#
# Ctrl-C (or SIGTERM) stops nginx, then the model server.
set -euo pipefail

cd "$(git rev-parse --show-toplevel)"
if [[ -x .venv/bin/mlflow ]]; then
    PATH="$PWD/.venv/bin:$PATH"
fi
export MLFLOW_TRACKING_URI=${MLFLOW_TRACKING_URI:-sqlite:///$PWD/mlflow.db}
SERVE_PORT=${SERVE_PORT:-5001}
SERVE_MAX_IN_FLIGHT=${SERVE_MAX_IN_FLIGHT:-16}
RETRY_AFTER_S=5

fail() {
    echo "serve: $*" >&2
    exit 1
}
# shellcheck source=scripts/nginx/lib.sh
source scripts/nginx/lib.sh

[[ -n "${MODEL:-}" ]] || fail "name the model to serve: make serve MODEL=models:/charlstm-macbeth-generator@champion"
[[ "$SERVE_PORT" =~ ^[0-9]+$ && "$SERVE_MAX_IN_FLIGHT" =~ ^[1-9][0-9]*$ ]] ||
    fail "SERVE_PORT and SERVE_MAX_IN_FLIGHT must be numbers"
require_nginx serve
command -v mlflow >/dev/null || fail "mlflow not found; run 'make setup' first"

# The params the model accepts, from its own signature (one line on failure, no traceback).
params=$(python - "$MODEL" <<'PY'
import sys

from mlflow.models import get_model_info

try:
    signature = get_model_info(sys.argv[1]).signature
except Exception as error:  # noqa: BLE001 - any failure is one line for the user
    from pipeline.core.urls import redact_text

    first = (str(error).strip().splitlines() or [type(error).__name__])[0]
    sys.exit(f"serve: cannot read {redact_text(sys.argv[1])}: {redact_text(first)[:300]}")
schema = signature.params if signature else None
print(",".join(spec.name for spec in schema.params) if schema else "")
PY
)

state=$(mktemp -d "${TMPDIR:-/tmp}/charlstm-serve.XXXXXX")
chmod 711 "$state" # nginx's workers (`nobody` when started as root) keep their temp files here
model_port=$(free_port)

model_pid=""
nginx_pid=""
stop_all() {
    trap - EXIT INT TERM
    stop_nginx
    if [[ -n "$model_pid" ]]; then
        kill -TERM -- "-$model_pid" 2>/dev/null || true
        for _ in {1..30}; do
            kill -0 "$model_pid" 2>/dev/null || break
            sleep 0.5
        done
        kill -KILL -- "-$model_pid" 2>/dev/null || true
        wait "$model_pid" 2>/dev/null || true
    fi
    rm -rf "$state"
    echo "serve: stopped" >&2
}
trap stop_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

render_nginx_conf scripts/nginx/serve.conf "$state" "PORT=$SERVE_PORT" "MODEL_PORT=$model_port" \
    "PARAMS=$params" "MAX_IN_FLIGHT=$SERVE_MAX_IN_FLIGHT" "RETRY_AFTER_S=$RETRY_AFTER_S"

# The model server in a session of its own, so that stopping it stops its uvicorn worker too.
setsid mlflow models serve -m "$MODEL" --env-manager local -h 127.0.0.1 -p "$model_port" &
model_pid=$!
# uvicorn listens once the model is loaded (minutes on a busy 2-core machine).
until (exec 3<>"/dev/tcp/127.0.0.1/$model_port") 2>/dev/null; do
    kill -0 "$model_pid" 2>/dev/null || fail "the model server exited; its messages are above"
    sleep 1
done

start_nginx "$state" "$SERVE_PORT"
echo "serve: $MODEL on http://127.0.0.1:$SERVE_PORT/invocations (params: ${params:-none}); Ctrl-C stops it" >&2
wait -n "$model_pid" "$nginx_pid" || true
fail "the model server or nginx exited"
