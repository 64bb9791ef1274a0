"""Throughput: vidanon against the PyAV decode+encode floor of the same clip, in one run.

    .venv/bin/python benchmarks/speed.py [--frames 360] [--sizes 720,1080] [--gan] [--cuda] [--nvenc]
        [--precision auto|fp32|bf16] [--motion default|on|off] [--write]

For each clip (the bundled sample, and generated 720p/1080p clips with 3 to 5 faces
and audio) it times, each in a fresh subprocess so that peak memory is its own:

- floor: PyAV decode + libx264 veryfast encode (same settings and thread count as
  vidanon), audio copied;
- vidanon blur (default settings) and, with --gan, vidanon gan on the CPU, and
  with --cuda also vidanon gan with the generator on the GPU (`--device cuda`),
  its paste-back on the GPU (the default there) and, for comparison, on the host;
  with --nvenc also blur (and with --cuda gan on the GPU) encoding with h264_nvenc
  (the row says when NVENC could not open and libx264 encoded instead);
- deface on the same clip, when the `deface` command is installed (`--deface PATH`
  for one in its own venv: `python3 -m venv /tmp/dfv && /tmp/dfv/bin/pip install deface`;
  it needs the non-headless opencv-python, which conflicts with ours).

It prints frames/s, the ratio to the floor, peak RSS and vidanon's time per stage,
and with --write replaces the "Throughput" section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "RESULTS.md"

FLOOR = r"""
import sys, time, av, resource
src, dst, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
t0, c0 = time.perf_counter(), time.process_time()
with av.open(src) as i, av.open(dst, "w") as o:
    iv = i.streams.video[0]; iv.thread_type = "AUTO"
    ov = o.add_stream("libx264", rate=iv.guessed_rate)
    ov.width, ov.height, ov.pix_fmt = iv.codec_context.width, iv.codec_context.height, "yuv420p"
    ov.time_base = iv.time_base; ov.codec_context.time_base = iv.time_base
    ov.codec_context.options = {"crf": "18", "preset": "veryfast"}; ov.codec_context.thread_count = threads
    oa = {s.index: o.add_stream_from_template(s) for s in i.streams.audio}
    n = 0
    for p in i.demux():
        if p.stream.index == iv.index:
            for f in p.decode():
                # the same RGB round trip vidanon makes
                g = av.VideoFrame.from_ndarray(f.to_ndarray(format="rgb24"), format="rgb24")
                g.pts, g.time_base = f.pts, f.time_base
                for q in ov.encode(g): o.mux(q)
                n += 1
        elif p.size and p.stream.index in oa:
            p.stream = oa[p.stream.index]; o.mux(p)
    for q in ov.encode(None): o.mux(q)
print(n, time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, time.process_time() - c0)
"""

VIDANON = r"""
import sys, time, json, resource
from vidanon.config import CoverConfig, DetectConfig, EncodeConfig, PipelineConfig, TrackConfig
from vidanon.pipeline import anonymize_video
mode, device, precision, codec, paste = sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6], sys.argv[7]
motion = {"default": None, "on": True, "off": False}[sys.argv[8] if len(sys.argv) > 8 else "default"]
variant = sys.argv[9] if len(sys.argv) > 9 else ""
detect = DetectConfig(turns=()) if variant == "upright" else DetectConfig(backend="yunet-opencv") if variant == "opencv" else DetectConfig()
dp = {"auto": None, "host": False, "device": True}[paste]
cover = CoverConfig(mode=mode, device=device, precision=precision, device_paste=dp)
cfg = PipelineConfig(detect=detect, cover=cover, track=TrackConfig(motion=motion), encode=EncodeConfig(codec=codec))
t0, c0 = time.perf_counter(), time.process_time()
s = anonymize_video(sys.argv[1], sys.argv[2], cfg, overwrite=True)
wall, cpu = time.perf_counter() - t0, time.process_time() - c0
print(s.frames_written, wall, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, cpu)
print(json.dumps(s.stage_seconds))
print(json.dumps(s.warnings))
"""


def make_clips(folder: Path, frames: int, sizes: list[int]) -> list[Path]:
    from vidanon.synth import photo, write_video

    names = ["faceapi-sample1.jpg", "faceapi-sample3.jpg", "faceapi-sample4.jpg", "faceapi-sample5.jpg"]
    clips = [ROOT / "samples" / "people.mp4"]
    for h in sizes:
        w = h * 16 // 9
        per = max(1, frames // len(names))
        clips.append(
            write_video(folder / f"gen{h}p.mp4", [(photo(n), per) for n in names], size=(w, h), fps=30, crf=20)
        )
    return clips


def run(code: str, *args: str) -> tuple[int, float, float, float, dict, list]:
    """Runs a timing child: (frames, seconds, peak RSS MiB, CPU seconds of all its threads, stages, warnings)."""
    r = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(r.stderr.strip().splitlines()[-1] if r.stderr.strip() else "failed")
    lines = r.stdout.strip().splitlines()
    n, secs, rss, cpu = lines[0].split()
    stages = json.loads(lines[1]) if len(lines) > 1 else {}
    warnings = json.loads(lines[2]) if len(lines) > 2 else []
    return int(n), float(secs), int(rss) / 1024, float(cpu), stages, warnings


def run_deface(exe: str | None, src: Path, dst: Path) -> tuple[float, float, float] | None:
    """deface's default run on src: (seconds, peak RSS MiB, CPU seconds), or None when deface is
    missing or fails."""
    if exe is None:
        return None
    t0 = time.perf_counter()
    r = subprocess.run(
        ["/usr/bin/time", "-f", "%M %U %S", exe, str(src), "-o", str(dst)], capture_output=True, text=True
    )
    if r.returncode != 0:
        print(f"deface failed on {src.name}: {r.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
        return None
    rss, user, system = r.stderr.strip().splitlines()[-1].split()
    return time.perf_counter() - t0, int(rss) / 1024, float(user) + float(system)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=360)
    ap.add_argument("--sizes", default="720,1080")
    ap.add_argument("--gan", action="store_true", help="also time gan mode")
    ap.add_argument("--cuda", action="store_true", help="also time gan mode with the generator on CUDA")
    ap.add_argument(
        "--nvenc", action="store_true", help="also time blur (and with --cuda, gan) encoding with h264_nvenc"
    )
    ap.add_argument("--precision", default="auto", help="gan mode on the CPU: auto, fp32 or bf16")
    ap.add_argument(
        "--deface",
        default=shutil.which("deface"),
        help="deface executable (default: from PATH); it needs opencv-python, so it lives in its own venv",
    )
    ap.add_argument(
        "--motion",
        choices=("default", "on", "off"),
        default="default",
        help="motion stabilization in every vidanon run (default: each mode's default, on in gan mode only)",
    )
    ap.add_argument(
        "--upright",
        action="store_true",
        help="also time each CPU mode with --turns none (the upright detector pass only), for the turned passes' cost",
    )
    ap.add_argument(
        "--opencv",
        action="store_true",
        help="also time each CPU mode with the detector run by OpenCV (yunet-opencv) instead of onnxruntime",
    )
    ap.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    a = ap.parse_args()
    sizes = [int(s) for s in a.sizes.split(",") if s]
    sys.path.insert(0, str(ROOT))
    from vidanon.config import EncodeConfig

    threads = EncodeConfig().thread_count()  # the floor encodes with vidanon's own thread count
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for clip in make_clips(tmp, a.frames, sizes):
            n, fsecs, frss, fcpu, *_ = run(FLOOR, str(clip), str(tmp / "floor.mp4"), str(threads))
            floor = n / fsecs
            what = f"floor (PyAV decode + x264 veryfast, {threads} threads)"
            rows.append((clip.name, what, floor, 1.0, frss, fcpu / fsecs, ""))
            x264, nv = "libx264", "h264_nvenc"
            runs = [("blur", "cpu", x264, "auto", "")] + ([("gan", "cpu", x264, "auto", "")] if a.gan else [])
            cpu_runs = list(runs)
            runs += [(m, d, c, p, "upright") for m, d, c, p, _ in cpu_runs] if a.upright else []
            runs += [(m, d, c, p, "opencv") for m, d, c, p, _ in cpu_runs] if a.opencv else []
            # on CUDA the paste-back runs on the GPU (devpaste); the host row is OpenCV's, for comparison
            runs += [("gan", "cuda", x264, "auto", ""), ("gan", "cuda", x264, "host", "")] if a.cuda else []
            runs += (
                ([("blur", "cpu", nv, "auto", "")] + ([("gan", "cuda", nv, "auto", "")] if a.cuda else []))
                if a.nvenc
                else []
            )
            for mode, device, codec, paste, variant in runs:
                out = tmp / f"{mode}.mp4"
                n, secs, rss, cpu, stages, warnings = run(
                    VIDANON, str(clip), str(out), mode, device, a.precision, codec, paste, a.motion, variant
                )
                fps = n / secs
                st = " ".join(f"{k} {v / n * 1000:.1f}" for k, v in stages.items())
                what = f"vidanon {mode}" + (" --device cuda" if device == "cuda" else "")
                what += " (paste-back on the host)" if paste == "host" else ""
                what += {"upright": " --turns none", "opencv": " (detector in OpenCV)"}.get(variant, "")
                if codec != x264:
                    fell_back = any(codec in w for w in warnings)
                    what += f" --codec {codec}" + (" (fell back to libx264)" if fell_back else "")
                rows.append((clip.name, what, fps, fps / floor, rss, cpu / secs, st))
            d = run_deface(a.deface, clip, tmp / "deface.mp4")
            if d is not None:
                rows.append((clip.name, "deface (default)", n / d[0], n / d[0] / floor, d[1], d[2] / d[0], ""))
    gpu = "no GPU"
    if a.cuda:
        import torch

        gpu = f"GPU {torch.cuda.get_device_name(0)}"
    flags = (" --gan" if a.gan else "") + (" --cuda" if a.cuda else "") + (" --nvenc" if a.nvenc else "")
    flags += f" --precision {a.precision}" if a.precision != "auto" else ""
    flags += f" --motion {a.motion}" if a.motion != "default" else ""
    flags += " --upright" if a.upright else ""
    flags += " --opencv" if a.opencv else ""
    flags += f" --deface {a.deface}" if a.deface and a.deface != shutil.which("deface") else ""
    head = (
        f"Machine: {os.cpu_count()} cores, {platform.processor() or platform.machine()}, {gpu}; "
        f"generator arithmetic on the CPU: {cpu_precision(a.precision)}. "
        f"Command: `.venv/bin/python benchmarks/speed.py{flags}`, {a.frames} frames per "
        "generated clip. Cores busy: CPU seconds of all the run's threads per second of its wall "
        "time (how much of the machine the stages keep busy; 1.0 on many cores means they wait on "
        "each other).\n\n| clip | what | frames/s | x floor | peak RSS MiB | cores busy | ms/frame per stage |\n"
        "| --- | --- | --- | --- | --- | --- | --- |\n"
    )
    table = head + "".join(
        f"| {c} | {w} | {f:.1f} | {r:.2f} | {m:.0f} | {b:.1f} | {s} |\n" for c, w, f, r, m, b, s in rows
    )
    print(table)
    if a.write:
        write_section("Throughput", table)


def cpu_precision(asked: str) -> str:
    """What `--precision asked` means on this CPU."""
    from vidanon.anonymize.gan import native_bf16

    if asked == "auto":
        return "bfloat16 (native on this CPU)" if native_bf16() else "float32 (no native bfloat16 on this CPU)"
    return {"fp32": "float32", "bf16": "bfloat16"}[asked]


def fresh_processes() -> ProcessPoolExecutor:
    """A pool that runs each task in a new spawned process, one at a time: x264 in PyAV writes
    other bytes for the same frames after other encodes in one process (stress.py's spinning
    after many: 5448d36f -> d6200828), so a run's figures would depend on the runs before it."""
    return ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"), max_tasks_per_child=1)


def write_section(title: str, body: str) -> None:
    """Replaces (or appends) the `## title` section of benchmarks/RESULTS.md."""
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    start = text.find(f"## {title}\n")
    block = f"## {title}\n\n{body.rstrip()}\n\n"
    if start < 0:
        text = text.rstrip() + "\n\n" + block
    else:
        end = text.find("\n## ", start + 1)
        text = text[:start] + block + (text[end + 1 :] if end >= 0 else "")
    RESULTS.write_text(text.rstrip() + "\n")


if __name__ == "__main__":
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    main()
