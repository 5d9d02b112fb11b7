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

# Without build isolation when $VENV's setuptools can build a wheel on its own (70.1 and
# later): nothing is downloaded. An older one (a venv's bundled 65) builds in isolation.
isolation=--no-build-isolation
"$python" - <<'PY' || isolation=
import sys
from importlib.metadata import version
sys.exit(tuple(int(p) for p in version("setuptools").split(".")[:2]) < (70, 1))
PY
"$python" -m pip wheel --quiet --no-deps $isolation --wheel-dir "$work/dist" .
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
