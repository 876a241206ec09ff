#!/usr/bin/env bash
# Retrain: `dvc repro`, or `dvc exp run -S KEY=VALUE ...` when params are overridden.
#
#   scripts/retrain.sh                                    # dvc repro
#   scripts/retrain.sh train.units=512 train.epochs=50    # dvc exp run -S train.units=512 -S ...
#   PARAMS_OVERRIDES="train.units=512" scripts/retrain.sh # the same; this is how CI passes them
#   make retrain PARAMS_OVERRIDES="train.units=512 train.epochs=50"
#
# Overrides come from the arguments, else from $PARAMS_OVERRIDES split on whitespace; each is a
# dotted params.yaml key, `=`, and a value without spaces. `dvc exp run` runs in the workspace:
# afterwards params.yaml, dvc.lock and every output are as if params.yaml had been edited and
# `dvc repro` run, and the experiment is also kept for `dvc exp show`.
# Runs in the git repository that holds the current directory, with its .venv when it has one.
set -euo pipefail

cd "$(git rev-parse --show-toplevel)"
if [[ -x .venv/bin/dvc ]]; then
    PATH="$PWD/.venv/bin:$PATH"
fi

if (($# > 0)); then
    overrides=("$@")
else
    read -r -a overrides <<<"${PARAMS_OVERRIDES:-}"
fi

if ((${#overrides[@]} == 0)); then
    echo "retrain: dvc repro" >&2
    exec dvc repro
fi

set_flags=()
for override in "${overrides[@]}"; do
    if [[ ! "$override" =~ ^[A-Za-z_][A-Za-z0-9_.-]*=.+$ ]]; then
        echo "retrain: error: override '$override' is not KEY=VALUE (e.g. train.units=512)" >&2
        exit 2
    fi
    set_flags+=(-S "$override")
done

echo "retrain: dvc exp run ${set_flags[*]}" >&2
exec dvc exp run "${set_flags[@]}"
