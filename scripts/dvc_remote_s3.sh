#!/usr/bin/env bash
# Point this clone at a shared DVC remote on S3 or an S3-compatible store (MinIO, Ceph, ...):
#
#   make dvc-remote-s3 URL=s3://my-bucket/charlstm                               # AWS S3
#   make dvc-remote-s3 URL=s3://my-bucket/charlstm ENDPOINT=http://minio:9000    # MinIO
#
# Then `dvc push` / `dvc pull`. The remote goes to .dvc/config.local (git-ignored), so neither
# its address nor anything else of this machine lands in a commit. Credentials are never written
# anywhere: DVC's S3 client reads AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or a profile in
# ~/.aws) when it connects.
set -euo pipefail

cd "$(git rev-parse --show-toplevel)"
if [[ -x .venv/bin/dvc ]]; then
    PATH="$PWD/.venv/bin:$PATH"
fi

command -v dvc >/dev/null || {
    echo "dvc-remote-s3: dvc not found; run 'make setup' first" >&2
    exit 1
}
if [[ "${URL:-}" != s3://?* ]]; then
    echo "dvc-remote-s3: URL must be an s3:// address, e.g. make dvc-remote-s3 URL=s3://my-bucket/charlstm" >&2
    exit 2
fi
if [[ -n "${ENDPOINT:-}" && "$ENDPOINT" != http://?* && "$ENDPOINT" != https://?* ]]; then
    echo "dvc-remote-s3: ENDPOINT must be an http(s):// address, e.g. ENDPOINT=http://127.0.0.1:9000" >&2
    exit 2
fi

dvc remote add --local --force --default team "$URL"
if [[ -n "${ENDPOINT:-}" ]]; then
    dvc remote modify --local team endpointurl "$ENDPOINT"
else
    dvc remote modify --local --unset team endpointurl
fi
echo "dvc-remote-s3: default remote 'team' is $URL${ENDPOINT:+ at $ENDPOINT} (in .dvc/config.local)"
if [[ -z "${AWS_ACCESS_KEY_ID:-}" && ! -e "${AWS_SHARED_CREDENTIALS_FILE:-$HOME/.aws/credentials}" ]]; then
    echo "dvc-remote-s3: export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY before dvc push/pull" >&2
fi
