#!/usr/bin/env bash
# Fetch this commit's DVC-tracked data and outputs from the DVC remote, when one is configured.
#
#   scripts/dvc_pull.sh                                 # the default remote in .dvc/config
#   DVC_REMOTE_URL=/mnt/dvc-store scripts/dvc_pull.sh   # add that remote for this checkout only
#   make dvc-pull
#
# CI passes DVC_REMOTE_URL from the secret of that name. A remote's credentials come from the
# variables its type reads (e.g. AWS_* for s3, which also needs the dvc-s3 package installed).
# With no remote at all it says so and exits 0: `dvc repro` rebuilds everything from the corpus.
# Files the remote lacks are not an error (`--allow-missing`); the next `dvc repro` rebuilds them.
# Runs in the git repository that holds the current directory, with its .venv when it has one.
set -euo pipefail

cd "$(git rev-parse --show-toplevel)"
if [[ -x .venv/bin/dvc ]]; then
    PATH="$PWD/.venv/bin:$PATH"
fi

if [[ -n "${DVC_REMOTE_URL:-}" ]]; then
    # --local writes .dvc/config.local (git-ignored), so the URL never lands in a commit.
    dvc remote add --local --force --default ci "$DVC_REMOTE_URL"
fi
if ! dvc remote default >/dev/null 2>&1; then
    echo "dvc_pull: no DVC remote configured (set DVC_REMOTE_URL to use one); skipping dvc pull" >&2
    exit 0
fi
dvc pull --allow-missing
