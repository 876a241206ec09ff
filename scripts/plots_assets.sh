#!/usr/bin/env bash
# Put Vega, Vega-Lite and Vega-Embed (the versions DVC's plots page asks for) into
# .dvc/plots-assets/, where .dvc/plots-template.html loads them: `dvc plots show` then draws
# offline. Needs npm (it fetches the packages with `npm pack` from the configured npm registry).
#   make plots-assets
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
destination=.dvc/plots-assets
packages=(vega@5.20.2 vega-lite@5.2.0 vega-embed@6.18.2)

if ! command -v npm >/dev/null; then
    echo "plots-assets: error: npm not found; install Node.js (e.g. apt-get install npm), or open dvc_plots/index.html online" >&2
    exit 1
fi
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
(cd "$scratch" && npm pack --silent "${packages[@]}" >/dev/null)
mkdir -p "$scratch/assets"
for package in "${packages[@]}"; do
    name=${package%@*}
    tar -xzf "$scratch/$name-${package#*@}.tgz" -C "$scratch" "package/build/$name.min.js"
    mv "$scratch/package/build/$name.min.js" "$scratch/assets/"
done
# Replace the folder as a whole, so a failed download never leaves a half-filled one.
rm -rf "$destination.old"
[[ -d $destination ]] && mv "$destination" "$destination.old"
mv "$scratch/assets" "$destination"
rm -rf "$destination.old"
echo "plots-assets: ${packages[*]} in $destination"
