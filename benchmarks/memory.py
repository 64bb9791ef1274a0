"""Peak memory against video length: does vidanon's memory stay flat as the video grows?

    .venv/bin/python benchmarks/memory.py [--frames 240] [--times 4] [--size 720] [--modes blur,gan]
        [--device cpu] [--write]

It writes one generated clip with audio (3 to 5 faces per frame, the photos of
`samples/photos` panned, one scene per photo) of `--frames` frames and a second
one `--times` as long (the same scenes repeated, so that tracks end and new
ones start all along: track churn, as in long footage). Each clip is anonymized
in a fresh subprocess; its resident memory (VmRSS) is sampled every 50 ms.

It prints, per mode and length: peak RSS, RSS when a quarter and when three
quarters of the run had passed, and the growth of RSS from 1/2 to 9/10 of the
run in MiB per 1000 frames. Flat means: the long clip's peak within a few
percent of the short one's, and no steady growth late in it. With --write it
replaces the "Memory against video length" section of
benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from speed import VIDANON, write_section  # noqa: E402

PHOTOS = ["faceapi-sample1.jpg", "faceapi-sample3.jpg", "faceapi-sample4.jpg", "faceapi-sample5.jpg"]


def make_clip(path: Path, frames: int, height: int) -> Path:
    """A clip of `frames` frames: the four photos, panned, one scene of 60 frames each, cycled."""
    from vidanon.synth import photo, write_video

    scenes, left, k = [], frames, 0
    while left > 0:
        n = min(60, left)
        scenes.append((photo(PHOTOS[k % len(PHOTOS)]), n))
        left -= n
        k += 1
    return write_video(path, scenes, size=(height * 16 // 9, height), fps=30, crf=20)


def rss_mib(pid: int) -> float | None:
    """Resident memory of a live process in MiB, None once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def sample_run(src: Path, dst: Path, mode: str, device: str) -> tuple[int, float, list[tuple[float, float]]]:
    """Runs vidanon on src in a subprocess: (frames, seconds, [(t, rss MiB)] sampled every 50 ms)."""
    args = [sys.executable, "-c", VIDANON, str(src), str(dst), mode, device, "auto", "libx264", "auto"]
    t0 = time.perf_counter()
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    samples = []
    while p.poll() is None:
        r = rss_mib(p.pid)
        if r is not None:
            samples.append((time.perf_counter() - t0, r))
        time.sleep(0.05)
    out, err = p.communicate()
    if p.returncode != 0:
        raise RuntimeError(err.strip().splitlines()[-1] if err.strip() else f"{mode} run failed")
    n, secs, *_ = out.strip().splitlines()[0].split()  # frames, seconds, peak RSS, CPU seconds
    return int(n), float(secs), samples


def at(samples: list[tuple[float, float]], frac: float) -> float:
    """RSS at the sample nearest to `frac` of the run's duration."""
    end = samples[-1][0]
    return min(samples, key=lambda s: abs(s[0] - frac * end))[1]


def growth_per_1000(samples: list[tuple[float, float]], frames: int) -> float:
    """Least-squares slope of RSS from 1/2 to 9/10 of the run (past the start-up, before the
    shutdown frees memory), in MiB per 1000 frames (frames taken as proportional to time)."""
    end = samples[-1][0]
    half = [(t, r) for t, r in samples if end / 2 <= t <= 0.9 * end]
    if len(half) < 3:
        return 0.0
    ts = [t for t, _ in half]
    rs = [r for _, r in half]
    mt, mr = sum(ts) / len(ts), sum(rs) / len(rs)
    var = sum((t - mt) ** 2 for t in ts)
    slope = sum((t - mt) * (r - mr) for t, r in half) / var if var else 0.0  # MiB per second
    return slope * end / frames * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=240, help="frames of the short clip")
    ap.add_argument("--times", type=int, default=4, help="the long clip is this many times as long")
    ap.add_argument("--size", type=int, default=720, help="clip height (16:9)")
    ap.add_argument("--modes", default="blur,gan")
    ap.add_argument("--device", default="cpu", help="device of gan mode")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    a = ap.parse_args()
    if a.frames < 60 or a.times < 2:
        ap.error("--frames must be >= 60 and --times >= 2")
    rows, figures = [], []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        clips = [make_clip(tmp / f"c{n}.mp4", n, a.size) for n in (a.frames, a.frames * a.times)]
        for mode in [m for m in a.modes.split(",") if m]:
            peaks = []
            for clip in clips:
                n, secs, samples = sample_run(clip, tmp / "out.mp4", mode, a.device if mode == "gan" else "cpu")
                peak = max(r for _, r in samples)
                peaks.append(peak)
                fig = {
                    "mode": mode,
                    "frames": n,
                    "seconds": round(secs, 1),
                    "peak": round(peak, 1),
                    "q1": round(at(samples, 0.25), 1),
                    "q3": round(at(samples, 0.75), 1),
                    "growth_per_1000": round(growth_per_1000(samples, n), 2),
                    "samples": len(samples),
                }
                figures.append(fig)
                ratio = f"{peak / peaks[0]:.3f}"
                # on the short clip the window is still start-up (models loading, queues filling)
                growth = f"{fig['growth_per_1000']:+.1f}" if clip is clips[-1] else "-"
                rows.append(
                    f"| {mode} | {n} | {n / secs:.1f} | {fig['q1']:.0f} | {fig['q3']:.0f} | {peak:.0f} | "
                    f"{ratio} | {growth} |\n"
                )
    table = (
        f"Machine: {os.cpu_count()} cores, {platform.processor() or platform.machine()}. Command: "
        f"`.venv/bin/python benchmarks/memory.py --frames {a.frames} --times {a.times} --size {a.size}"
        f" --modes {a.modes}" + (f" --device {a.device}" if a.device != "cpu" else "") + "`. "
        f"{a.size}p clips of 3 to 5 faces, one 60-frame scene per photo, cycled (new tracks all along). "
        "RSS sampled every 50 ms; growth: least-squares slope of RSS from 1/2 to 9/10 of the run.\n\n"
        "| mode | frames | frames/s | RSS at 1/4 of the run MiB | at 3/4 MiB | peak MiB | peak / short clip's | "
        "growth from 1/2 to 9/10 of the run, MiB per 1000 frames |\n| --- | --- | --- | --- | --- | --- | --- | --- |\n"
        + "".join(rows)
    )
    print(table)
    if a.json:
        a.json.write_text(json.dumps(figures, indent=1))
    if a.write:
        write_section("Memory against video length", table)


if __name__ == "__main__":
    main()
