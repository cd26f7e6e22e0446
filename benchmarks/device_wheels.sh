#!/usr/bin/env bash
# Fetch, here, the wheels the GPU machine lacks for the merge engine (Python 3.12, x86-64 Linux) into .whl,
# which the device call carries (carry: [".whl"]) and benchmarks/device_check.sh installs there.
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
platforms=(--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)
for wheel in pydantic pydantic-core annotated-types typing-inspection; do
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        "${platforms[@]}" -d .whl "$wheel"
done
ls .whl
