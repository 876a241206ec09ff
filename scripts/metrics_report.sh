#!/usr/bin/env bash
# Print a Markdown report of how the workspace's params, metrics and plots differ from BASE_REV.
#
#   scripts/metrics_report.sh main          # after `scripts/retrain.sh` on a feature branch
#   scripts/metrics_report.sh HEAD~1
#   make metrics-report BASE_REV=main
#
# The report holds `dvc params diff BASE_REV --md` and `dvc metrics diff BASE_REV --md` (changed
# values only) and says where `dvc plots diff BASE_REV` wrote its HTML. It goes to stdout and to
# $REPORT_DIR/report.md; the plots go to $REPORT_DIR/plots/index.html (REPORT_DIR defaults to
# reports/compare). An all-zero BASE_REV (GitHub's "no previous commit") means HEAD.
# A BASE_REV that is not a commit is an error (exit 2); a failing params or metrics diff fails the
# script; a failing plots diff is noted in the report, since the numbers are still worth reading.
# Runs in the git repository that holds the current directory, with its .venv when it has one.
set -euo pipefail

if (($# != 1)); then
    echo "usage: $0 BASE_REV   (a commit, branch or tag to compare the workspace with)" >&2
    exit 2
fi
base="$1"
[[ "$base" =~ ^0{40}$ ]] && base=HEAD

cd "$(git rev-parse --show-toplevel)"
if [[ -x .venv/bin/dvc ]]; then
    PATH="$PWD/.venv/bin:$PATH"
fi
if ! git rev-parse --quiet --verify "$base^{commit}" >/dev/null; then
    echo "metrics_report: error: '$base' is not a commit here (with actions/checkout, set" \
        "fetch-depth: 0 so the base is fetched)" >&2
    exit 2
fi
# A full SHA makes a wide table column; 12 digits are as unambiguous in practice.
[[ "$base" =~ ^[0-9a-f]{40}$ ]] && base="$(git rev-parse --short=12 "$base")"

report_dir="${REPORT_DIR:-reports/compare}"
mkdir -p "$report_dir"

# A DVC diff table, or a line saying there is nothing to show (DVC prints only a header then).
table_or() {
    local table="$1" empty_note="$2"
    if (($(grep -c '^|' <<<"$table") > 2)); then
        printf '%s\n' "$table"
    else
        printf '%s\n' "$empty_note"
    fi
}

params="$(dvc params diff "$base" --md)"
metrics="$(dvc metrics diff "$base" --md)"
if plots_log="$(dvc plots diff "$base" --out "$report_dir/plots" 2>&1)"; then
    plots_note="HTML plots of \`$base\` against the workspace: \`$report_dir/plots/index.html\`"
    plots_note+=" (in CI: the \`retrain-outputs\` artifact)."
else
    plots_note="\`dvc plots diff $base\` failed: $(tail -n 1 <<<"$plots_log")"
    echo "metrics_report: warning: $plots_note" >&2
fi

draft="$(mktemp "$report_dir/.report.md.XXXXXX")"
trap 'rm -f "$draft"' EXIT
{
    echo "## Retraining report: workspace vs \`$base\`"
    echo
    echo "Base: \`$(git rev-parse --short=12 "$base^{commit}")\` $(git log -1 --format=%s "$base")"
    echo
    echo "### Params"
    echo
    table_or "$params" "_No params changed._"
    echo
    echo "### Metrics"
    echo
    table_or "$metrics" "_No metrics changed._"
    echo
    echo "### Plots"
    echo
    echo "$plots_note"
} >"$draft"
chmod 644 "$draft"
mv "$draft" "$report_dir/report.md"
trap - EXIT
cat "$report_dir/report.md"
