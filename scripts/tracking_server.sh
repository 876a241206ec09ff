#!/usr/bin/env bash
# A shared MLflow tracking server for the team, in the foreground, until Ctrl-C:
#
#   make tracking-server                                   # http://127.0.0.1:5000
#   TRACKING_PORT=5050 POSTGRES_PORT=5433 make tracking-server
#   TRACKING_WORKERS=4 make tracking-server                # more web workers for a busy team
#
# - Front: nginx (Debian's `nginx`, `libnginx-mod-http-lua`, `lua-cjson`) on TRACKING_PORT, MLflow
#   behind it on a private port of 127.0.0.1. It limits failed logins, which MLflow's auth app
#   does not: past TRACKING_MAX_FAILED_LOGINS (default 10) wrong passwords for one username from
#   one address in TRACKING_LOCKOUT_S (default 300) seconds, that username is refused from that
#   address with HTTP 429 and Retry-After until the window ends (scripts/nginx/tracking.conf).
# - Backend store: PostgreSQL (Debian's `postgresql` package), a project-local cluster in
#   $TEAM_DIR/postgres (default .team/, git-ignored) created by initdb on first start. Run as
#   root, the cluster runs as the `postgres` user (else `nobody`): PostgreSQL refuses root.
# - Artifacts: proxied by the server (--serve-artifacts) from $TEAM_DIR/artifacts, so clients
#   need no access to the artifact store itself.
# - Authentication: MLflow's basic-auth app. Users and permissions live in the database
#   `mlflow_auth` of the same cluster. The admin user is MLFLOW_AUTH_ADMIN_USERNAME (default
#   `admin`), created on first start with MLFLOW_AUTH_ADMIN_PASSWORD, or with a random password
#   written to $TEAM_DIR/admin_password (mode 600) when that is unset.
#
# Ctrl-C (or SIGTERM) stops the MLflow server, then PostgreSQL. Secrets never appear on a
# command line or in this script's output: the database password reaches MLflow as PGPASSWORD.
set -euo pipefail

cd "$(git rev-parse --show-toplevel)"
TEAM_DIR=${TEAM_DIR:-.team}
TRACKING_PORT=${TRACKING_PORT:-5000}
POSTGRES_PORT=${POSTGRES_PORT:-5433}
ADMIN_USER=${MLFLOW_AUTH_ADMIN_USERNAME:-admin}
if [[ -x .venv/bin/mlflow ]]; then
    PATH="$PWD/.venv/bin:$PATH"
fi

fail() {
    echo "tracking-server: $*" >&2
    exit 1
}

# --- PostgreSQL: its programs, and the user that runs it --------------------------------------
# PG_BINDIR picks one installed version; else initdb on PATH, else Debian's newest under
# /usr/lib/postgresql/<major>/bin (Debian keeps the server programs off PATH).
initdb=${PG_BINDIR:+$PG_BINDIR/initdb}
if [[ -z "$initdb" ]]; then
    initdb=$(command -v initdb || ls -1 /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n 1 || true)
fi
if [[ ! -x "$initdb" ]]; then
    fail "PostgreSQL is not installed (no initdb${PG_BINDIR:+ in $PG_BINDIR}); install it with" \
        "'sudo apt-get install postgresql' (Debian/Ubuntu), then run make tracking-server again"
fi
initdb=$(readlink -f "$initdb") # a symlink on PATH: the real folder has pg_ctl, psql, createdb
pg_bin=$(dirname "$initdb")
command -v mlflow >/dev/null || fail "mlflow not found; run 'make setup' first"
python -c "import flask_wtf, psycopg2" 2>/dev/null ||
    fail "the basic-auth app and PostgreSQL need mlflow[auth] and psycopg2-binary; run 'make setup'"
# shellcheck source=scripts/nginx/lib.sh
source scripts/nginx/lib.sh
require_nginx tracking-server
MAX_FAILED_LOGINS=${TRACKING_MAX_FAILED_LOGINS:-10}
LOCKOUT_S=${TRACKING_LOCKOUT_S:-300}
[[ "$MAX_FAILED_LOGINS" =~ ^[1-9][0-9]*$ && "$LOCKOUT_S" =~ ^[1-9][0-9]*$ ]] ||
    fail "TRACKING_MAX_FAILED_LOGINS and TRACKING_LOCKOUT_S must be whole numbers above 0"

if [[ $EUID -eq 0 ]]; then
    pg_user=$(id -u postgres >/dev/null 2>&1 && echo postgres || echo nobody)
    as_pg_user() { runuser -u "$pg_user" -- "$@"; }
else
    pg_user=$(id -un)
    as_pg_user() { "$@"; }
fi

# --- state folder and secrets (first start only) ----------------------------------------------
# 711: the PostgreSQL user must be able to pass through to its own data folder, no more.
mkdir -p "$TEAM_DIR/artifacts"
chmod 711 "$TEAM_DIR"
TEAM_DIR=$(cd "$TEAM_DIR" && pwd)
pg_data="$TEAM_DIR/postgres"

new_secret() { # a random password, kept in a file only its owner can read
    [[ -s "$1" ]] || (umask 077 && head -c 24 /dev/urandom | base64 | tr -d '/+=' >"$1")
}
new_secret "$TEAM_DIR/postgres_password"
new_secret "$TEAM_DIR/flask_secret_key"
admin_password_hint='$MLFLOW_AUTH_ADMIN_PASSWORD'
if [[ -z "${MLFLOW_AUTH_ADMIN_PASSWORD:-}" ]]; then
    new_secret "$TEAM_DIR/admin_password"
    MLFLOW_AUTH_ADMIN_PASSWORD=$(cat "$TEAM_DIR/admin_password")
    admin_password_hint="\$(cat $TEAM_DIR/admin_password)"
fi

if [[ ! -s "$pg_data/PG_VERSION" ]]; then
    echo "tracking-server: creating the PostgreSQL cluster in $pg_data (as $pg_user)" >&2
    mkdir -p "$pg_data"
    chmod 700 "$pg_data"
    [[ $EUID -eq 0 ]] && chown "$pg_user:" "$pg_data"
    as_pg_user test -w "$pg_data" ||
        fail "the PostgreSQL user '$pg_user' cannot reach $pg_data (a parent folder is private);" \
            "set TEAM_DIR to a folder it can reach, e.g. TEAM_DIR=/srv/charlstm-team"
    # Superuser `mlflow` with a password; initdb reads it from a file the cluster's user owns.
    install -m 600 -o "$pg_user" "$TEAM_DIR/postgres_password" "$TEAM_DIR/initdb_password"
    as_pg_user "$pg_bin/initdb" --pgdata="$pg_data" --username=mlflow --auth=scram-sha-256 \
        --pwfile="$TEAM_DIR/initdb_password" --encoding=UTF8 --no-instructions \
        >"$TEAM_DIR/initdb.log" 2>&1 || initdb_failed=1
    rm -f "$TEAM_DIR/initdb_password"
    [[ -z "${initdb_failed:-}" ]] || fail "initdb failed; see $TEAM_DIR/initdb.log"
fi

# --- start PostgreSQL, stop it again on the way out -------------------------------------------
export PGPASSWORD PGHOST=127.0.0.1 PGPORT=$POSTGRES_PORT PGUSER=mlflow
PGPASSWORD=$(cat "$TEAM_DIR/postgres_password")
mlflow_pid=""
nginx_pid=""
stop_all() {
    trap - EXIT INT TERM
    stop_nginx
    if [[ -n "$mlflow_pid" ]]; then
        kill -TERM -- "-$mlflow_pid" 2>/dev/null || true
        # Its supervisor can linger after its workers have finished: 20 s, then SIGKILL.
        for _ in {1..40}; do
            kill -0 "$mlflow_pid" 2>/dev/null || break
            sleep 0.5
        done
        kill -KILL -- "-$mlflow_pid" 2>/dev/null || true
        wait "$mlflow_pid" 2>/dev/null || true
    fi
    as_pg_user "$pg_bin/pg_ctl" --pgdata="$pg_data" --mode=fast --wait --silent stop || true
    echo "tracking-server: stopped" >&2
}
trap stop_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

as_pg_user "$pg_bin/pg_ctl" --pgdata="$pg_data" --log="$pg_data/server.log" --wait --silent \
    -o "-p $POSTGRES_PORT -c listen_addresses=127.0.0.1 -c unix_socket_directories=''" start ||
    fail "PostgreSQL did not start on 127.0.0.1:$POSTGRES_PORT (port in use?); see $pg_data/server.log"

for database in mlflow mlflow_auth; do
    exists=$("$pg_bin/psql" -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname='$database'")
    [[ "$exists" == 1 ]] || "$pg_bin/createdb" "$database"
done

# --- the MLflow server with basic auth --------------------------------------------------------
# MLflow reads the auth settings from this file; it holds no secret (PGPASSWORD does).
cat >"$TEAM_DIR/basic_auth.ini" <<EOF
[mlflow]
# Everyone signed in may read every experiment; writing needs ownership or a grant.
default_permission = READ
database_uri = postgresql+psycopg2://mlflow@127.0.0.1:$POSTGRES_PORT/mlflow_auth
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
# Check a password (PBKDF2, deliberately slow) once a minute per user and worker, not on every
# request: a training run sends hundreds. A changed password may work for up to 60 s more.
auth_cache_ttl_seconds = 60
EOF
export MLFLOW_AUTH_CONFIG_PATH="$TEAM_DIR/basic_auth.ini"
export MLFLOW_AUTH_ADMIN_USERNAME=$ADMIN_USER MLFLOW_AUTH_ADMIN_PASSWORD
MLFLOW_FLASK_SERVER_SECRET_KEY=$(cat "$TEAM_DIR/flask_secret_key")
export MLFLOW_FLASK_SERVER_SECRET_KEY

# MLflow's job runner serves GenAI features (scorers, trace roll-ups) that this project does not
# use; off, it spares seven resident Python processes. MLFLOW_SERVER_ENABLE_JOB_EXECUTION=true
# turns it back on.
export MLFLOW_SERVER_ENABLE_JOB_EXECUTION=${MLFLOW_SERVER_ENABLE_JOB_EXECUTION:-false}
# Its own process group, so that stopping it also stops the web workers it starts. One worker
# by default: with several, uvicorn's supervisor kills workers that start slowly on a busy
# machine, and one (threaded) worker already serves parallel experiments.
backend_port=$(free_port)
setsid mlflow server --host 127.0.0.1 --port "$backend_port" \
    --backend-store-uri "postgresql+psycopg2://mlflow@127.0.0.1:$POSTGRES_PORT/mlflow" \
    --serve-artifacts --artifacts-destination "$TEAM_DIR/artifacts" \
    --app-name basic-auth --workers "${TRACKING_WORKERS:-1}" &
mlflow_pid=$!

# Print what to export once it answers, so the lines are not lost in its start-up log.
until (exec 3<>"/dev/tcp/127.0.0.1/$backend_port") 2>/dev/null; do
    kill -0 "$mlflow_pid" 2>/dev/null || fail "the MLflow server exited; its messages are above"
    sleep 0.5
done
mkdir -p "$TEAM_DIR/nginx"
chmod 711 "$TEAM_DIR/nginx" # its workers (`nobody` when started as root) keep temp files here
render_nginx_conf scripts/nginx/tracking.conf "$TEAM_DIR/nginx" "PORT=$TRACKING_PORT" \
    "BACKEND_PORT=$backend_port" "MAX_FAILURES=$MAX_FAILED_LOGINS" "WINDOW_S=$LOCKOUT_S"
start_nginx "$TEAM_DIR/nginx" "$TRACKING_PORT"
cat <<EOF
tracking-server: MLflow on http://127.0.0.1:$TRACKING_PORT (PostgreSQL on 127.0.0.1:$POSTGRES_PORT, failed logins limited); Ctrl-C stops it.
In another shell, to log the pipeline's runs there:
    export MLFLOW_TRACKING_URI=http://127.0.0.1:$TRACKING_PORT
    export MLFLOW_TRACKING_USERNAME=$ADMIN_USER
    export MLFLOW_TRACKING_PASSWORD="$admin_password_hint"
EOF
wait -n "$mlflow_pid" "$nginx_pid" || true
fail "the MLflow server or nginx exited"
