#!/usr/bin/env bash
# The GPU speed check of issue 6 in ONE device call (the machine has no network and is
# bare between sessions). Build the wheels here first: scripts/device_wheels.sh -> .whl-gpu.
#
#   device run:  bash scripts/gpu_check.sh      carry: [".whl-gpu"]     timeout_s: 540
#
# Writes to $OUT: tests.txt (the CUDA tests, when the image has pytest), nvenc.txt (why h264_nvenc does or does not open: driver, encoder
# library, container capabilities, FFmpeg's own message) and speed.md (benchmarks/speed.py
# --gan --cuda --nvenc at 1080p: floor, blur, gan on CPU, gan on CUDA with the paste-back
# on the GPU and on the host, the NVENC rows). FRAMES (default 240) sets the clip length.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl-gpu/wheels/*.whl
export PYTHONPATH=/tmp/site:$PWD/.whl-gpu/site:$PWD
{
  nvidia-smi --query-gpu=name,driver_version,encoder.stats.sessionCount --format=csv
  echo "NVIDIA_DRIVER_CAPABILITIES=${NVIDIA_DRIVER_CAPABILITIES:-unset}"
  ldconfig -p | grep -i -E "nvidia-encode|libcuda\.so" || echo "no libnvidia-encode / libcuda in the linker cache"
  python3 - <<'PY'
import ctypes
from fractions import Fraction

for lib in ("libcuda.so.1", "libnvidia-encode.so.1"):
    try:
        ctypes.CDLL(lib)
        print(lib, "loads")
    except OSError as exc:
        print(lib, "does not load:", exc)
from vidanon.io.encode import _nvenc_problem

print("h264_nvenc 1920x1080:", _nvenc_problem("h264_nvenc", 1920, 1080, Fraction(30)) or "opens")
PY
} >"$OUT/nvenc.txt" 2>&1
cat "$OUT/nvenc.txt"
# the CUDA-only tests (the paste-back on the GPU against the CPU device), where pytest exists
if python3 -c "import pytest" 2>/dev/null; then
  python3 -m pytest -q -p no:cacheprovider tests/test_generator.py -k cuda 2>&1 | tail -3 | tee "$OUT/tests.txt"
fi
python3 benchmarks/speed.py --gan --cuda --nvenc --sizes 1080 --frames "${FRAMES:-240}" | tee "$OUT/speed.md"
