#!/usr/bin/env bash
# One-GPU check of t2i-harness, from a plain source checkout, on a machine that reaches nothing outside.
#
#   bash benchmarks/gpu_check.sh              # CUDA GPU: paper-cub, batch 20, 2,000-image evaluation, <= ~4 min
#   bash benchmarks/gpu_check.sh --dry-run    # the same code on the CPU at the test preset (seconds)
#   OUT=/some/dir bash benchmarks/gpu_check.sh   # also writes the table to $OUT/RESULTS.md
#
# No install step and no entry points: PYTHONPATH=<checkout>, and the built-in methods are registered from the
# source tree (harness.contract.plugins imports plugins/*). Needs torch (2.11 or newer) + torchvision, numpy, pluggy and
# pyyaml; pandas, tqdm, scipy, torch-fidelity and openai-clip are optional (the metrics are timed with
# random-weight extractors and labelled "timing only" in any case: no weight file is reachable).
#
# pluggy or pyyaml missing and no network: on a connected machine run
#   pip download pluggy pyyaml --no-deps --only-binary=:all: --python-version 3.12 -d benchmarks/wheels
# and carry benchmarks/wheels/ with the checkout (or point $HARNESS_WHEELS at a folder of wheels). Every *.whl
# found there is put on PYTHONPATH (a wheel is a zip: pure-Python packages import from it directly; PyYAML
# then runs without its optional C extension).
#
# Extra arguments go to benchmarks/gpu_check.py (--methods attngan,dmgan --batch 20 --steps 3 --eval-images
# 2000 --budget 225 --out FILE).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
cd "$repo"
wheels="${HARNESS_WHEELS:-$here/wheels}"
extra=""
if [ -d "$wheels" ]; then
  for w in "$wheels"/*.whl; do
    [ -e "$w" ] && extra="$extra:$w"
  done
fi
export PYTHONPATH="$repo$extra${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
python="${PYTHON:-python3}"
command -v "$python" >/dev/null 2>&1 || python=python
exec "$python" "$here/gpu_check.py" "$@"
