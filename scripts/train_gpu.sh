#!/usr/bin/env bash
# One resumable chunk of generator training on a CUDA machine.
#
#   scripts/train_gpu.sh [RESUME] [OUT]
#
# RESUME  checkpoint to continue from (default: the bundled vidanon/weights/generator.pt,
#         which carries its full training state); "none" starts a new run.
# OUT     where to write (default: $OUT/ckpt.pt when $OUT is set, else /tmp/ckpt.pt).
#
# Environment: MINUTES (default 9, keep chunks <= 10 min), BATCH (default 128),
# PROCS (data worker processes, default 12: each makes whole batches, no GIL shared
# with the training loop; 0 for threads only), WORKERS (data threads, default 14) and
# PRODUCERS (batch-assembling threads, default 4): used with PROCS=0, or when /dev/shm
# is too small for the processes' batches,
# REUSE (--max-reuse, default 2), SWAP / SWAP_SCALE (--swap-prob / --swap-scale; default:
# what the resumed checkpoint was trained with, stored in it; a new run uses 1 / 0.9, the
# bundled generator's recipe: its donor input needs swapped crops), DEVICE (default cuda;
# cpu for a dry run), PYTHON (default python), EXTRA (more options).
# OpenCV and torch run one thread each per worker (--threads 1): the parallelism
# is across faces, and nested OpenCV thread pools only contend.
# Each chunk continues the step counter; copy OUT back to vidanon/weights/generator.pt
# when it is better (check with benchmarks/gan_quality.py --checkpoint OUT).
set -euo pipefail
cd "$(dirname "$0")/.."
RESUME=${1:-vidanon/weights/generator.pt}
DEST=${2:-${OUT:-/tmp}/ckpt.pt}
ARGS=(--device "${DEVICE:-cuda}" --minutes "${MINUTES:-9}" --batch-size "${BATCH:-128}"
      --processes "${PROCS:-12}" --workers "${WORKERS:-14}" --producers "${PRODUCERS:-4}"
      --max-reuse "${REUSE:-2}" --threads 1
      --save-every 120 --log-every 50 --out "$DEST")
if [[ "$RESUME" != "none" ]]; then
  ARGS+=(--resume "$RESUME")
else
  ARGS+=(--donor --swap-prob "${SWAP:-1}" --swap-scale "${SWAP_SCALE:-0.9}")
fi
[[ "$RESUME" == "none" || -z "${SWAP:-}" ]] || ARGS+=(--swap-prob "$SWAP")
[[ "$RESUME" == "none" || -z "${SWAP_SCALE:-}" ]] || ARGS+=(--swap-scale "$SWAP_SCALE")
# shellcheck disable=SC2086
exec "${PYTHON:-python}" scripts/train.py "${ARGS[@]}" ${EXTRA:-}
