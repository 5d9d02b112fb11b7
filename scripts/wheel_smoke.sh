#!/usr/bin/env bash
# Builds Warden's wheel, installs it into a fresh virtual environment in a temporary folder
# outside the checkout, and runs `warden init`, `warden serve`, one prediction and
# `warden audit verify` from there (scripts/wheel_smoke.py).
#
# The fresh environment reuses the dependencies already installed in $VENV (default .venv):
# nothing is downloaded, torch included. Usage: scripts/wheel_smoke.sh
set -euo pipefail
cd "$(dirname "$0")/.."
checkout=$(pwd)
venv=${VENV:-.venv}
python="$checkout/$venv/bin/python"
work=$(mktemp -d "${TMPDIR:-/tmp}/warden-wheel.XXXXXX")
trap 'rm -rf "$work"' EXIT

# No build isolation: setuptools comes from $VENV instead of the network.
"$python" -m pip wheel --quiet --no-deps --no-build-isolation --wheel-dir "$work/dist" .
wheel=$(ls "$work"/dist/warden-*.whl)

"$python" -m venv "$work/venv"
# The dependencies: $VENV's site-packages as a plain path, after the new environment's own,
# so `governance` and `inference` come from the wheel (a .pth path line runs no .pth inside).
deps=$("$python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
site=$("$work/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
echo "$deps" > "$site/warden-deps.pth"
"$work/venv/bin/python" -m pip install --quiet --no-deps --no-index "$wheel"

mkdir "$work/site"
cd "$work/site"
# Only what the smoke test sets: no WARDEN_* setting of the caller's leaks in.
env -i PATH="$work/venv/bin:/usr/bin:/bin" HOME="$work/site" \
    "$work/venv/bin/python" "$checkout/scripts/wheel_smoke.py" "$checkout"
