#!/usr/bin/env bash
# Re-create the bundled toy weights (weights/toy2d/<dataset>) with the toy trainer's defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
for d in moons swissroll 8gaussians checkerboard pinwheel circles gmm; do
  "$PY" -m trainers.toy2d --dataset "$d" --release "weights/toy2d/$d"
done
