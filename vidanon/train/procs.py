"""Training batches made by worker processes, for a GPU host with many cores.

`BatchMaker`'s threads share one interpreter: YuNet releases the GIL, but the crop
geometry and the swaps are numpy code that holds it, and so does the training loop
itself. On the H200 machine (16 cores, 14 detection threads, 4 producers, the
teacher on the GPU) the data made about 2 fresh batches of 128 a second (2.8
steps/s, a quarter of them on a reused batch), while one worker process makes
about one a second on one core of this 2-core machine, the teacher on that core
too. Here each process draws its own faces (the teacher on its CPU, one thread)
and makes whole batches, which reach the trainer through shared memory
(`torch.multiprocessing`).
"""

from __future__ import annotations

import logging
import queue
import shutil
import time
import traceback

import numpy as np

from vidanon.train.data import Batch, BatchSpec, FolderFaces, TeacherFaces, put_until_stopped

log = logging.getLogger(__name__)

POLL_S = 0.5  # how often a waiting trainer checks that its workers are still alive
CLOSE_S = 60.0  # how long `close` lets the workers finish their batch before terminating them


class SharedMemoryError(RuntimeError):
    """Too little shared memory for the worker processes' batches (a container's small /dev/shm)."""


def shared_bytes(spec: BatchSpec, processes: int, prefetch: int) -> int:
    """Shared memory the batches in flight take: each worker's queued ones and the one it
    is making, two held by the trainer; 17 float32 planes a crop (image, donor and the
    crop as drawn: 3 each; 5 heatmaps; mask, valid and drawn valid), with room to spare."""
    per_batch = spec.batch_size * spec.resolution**2 * 17 * 4
    return int(1.5 * per_batch * (processes * (prefetch + 1) + 2))


def _shm_free() -> int | None:
    try:
        return shutil.disk_usage("/dev/shm").free
    except OSError:
        return None  # no /dev/shm here: let torch find its own way


def worker_seed(seed: int, step: int, index: int) -> int:
    """The face stream of worker `index` in a chunk that starts at `step`: every chunk and
    every worker draws other faces (a resumed run does not repeat the last chunk's)."""
    return int(np.random.SeedSequence([seed, step, index]).generate_state(1)[0])


def _work(spec: BatchSpec, seed: int, out, stop) -> None:
    """A worker process: whole batches into `out` until `stop` is set; an error goes to `out` as text."""
    try:
        import cv2
        import torch

        torch.set_num_threads(1)
        cv2.setNumThreads(1)
        if spec.folder_index is None:
            source = TeacherFaces(seed, "cpu")
        else:
            source = FolderFaces.from_index(list(spec.folder_index), seed)
        rng = np.random.default_rng(seed)
        while not stop.is_set():
            put_until_stopped(out, spec.make(source.sample(spec.batch_size), rng), stop)
    except KeyboardInterrupt:
        pass
    except BaseException:  # noqa: BLE001 - handed to the trainer, which raises it
        out.put(f"data worker failed: {traceback.format_exc()}")


class ProcessBatches:
    """Batches from `processes` worker processes; `BatchMaker`'s `next`/`close` interface.

    Args:
        spec: what to make.
        processes: worker processes (each one core: the teacher, YuNet and the crops).
        seed, step: with the worker's index, seed each worker's faces (`worker_seed`).
        prefetch: batches each worker may have waiting.

    The batches' order depends on timing, and a resumed run draws new faces rather
    than continuing the stream (the checkpoint's data state is not used).
    """

    def __init__(self, spec: BatchSpec, processes: int, seed: int, step: int, prefetch: int = 1) -> None:
        if processes < 1:
            raise ValueError(f"processes must be >= 1, got {processes}")
        need = shared_bytes(spec, processes, prefetch)
        free = _shm_free()
        if free is not None and free < need:
            raise SharedMemoryError(
                f"{processes} data processes need about {need / 2**20:.0f} MiB of shared memory "
                f"(/dev/shm), {free / 2**20:.0f} MiB free"
            )
        import torch.multiprocessing as mp

        ctx = mp.get_context("spawn")  # no fork of a process that holds threads or CUDA
        self._queue = ctx.Queue(maxsize=processes * prefetch)
        self._stop = ctx.Event()
        self._procs = [
            ctx.Process(
                target=_work,
                args=(spec, worker_seed(seed, step, i), self._queue, self._stop),
                name=f"vidanon-data-{i}",
                daemon=True,
            )
            for i in range(processes)
        ]
        for p in self._procs:
            p.start()

    def next(self, block: bool = True) -> Batch | None:
        """The next batch; with block=False, None when none is ready yet.

        Raises:
            RuntimeError: a worker failed (its traceback in the message), or every worker is gone.
        """
        while True:
            try:
                item = self._queue.get(timeout=POLL_S) if block else self._queue.get_nowait()
            except queue.Empty:
                if not any(p.is_alive() for p in self._procs):
                    raise RuntimeError("every data worker process has exited") from None
                if not block:
                    return None
                continue
            if isinstance(item, str):
                raise RuntimeError(item)
            return item

    def close(self) -> None:
        """Stops the workers (draining what they still hand over) and waits for them."""
        self._stop.set()
        deadline = time.monotonic() + CLOSE_S
        for p in self._procs:
            while p.is_alive() and time.monotonic() < deadline:
                try:
                    self._queue.get(timeout=0.1)
                except queue.Empty:
                    pass
                except (OSError, EOFError):
                    # a batch of a worker that has already exited: its shared memory went with it
                    pass
                p.join(timeout=0.1)
            if p.is_alive():
                log.warning("data worker %s did not stop; terminating it", p.name)
                p.terminate()
                p.join()
        self._queue.close()
