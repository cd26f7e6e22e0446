#!/usr/bin/env bash
# The CUDA path checked and timed in one call on a GPU machine (benchmarks/device_check.py says what it measures).
#   bash benchmarks/device_check.sh OUT                       on the GPU machine: 1B then 7B if time allows
#   bash benchmarks/device_check.sh OUT --cpu-only --presets tiny    anywhere: the CPU half (CI runs this)
# Run from the repository root. A bare GPU machine has torch, transformers, safetensors, pyyaml and rich but not
# pydantic: benchmarks/device_wheels.sh fetches its wheels into .whl here, and this installs them there.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: bash benchmarks/device_check.sh OUT [--cpu-only] [--presets 1b,7b]" >&2; exit 2; }
PYTHON=${PYTHON:-python3}  # the GPU machine's own; here: PYTHON=.venv/bin/python
if ! "$PYTHON" -c "import pydantic" 2>/dev/null && ls .whl/*.whl >/dev/null 2>&1; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
exec "$PYTHON" benchmarks/device_check.py "$@"
