"""Leak check of gan mode across run seeds: does any fake face pass for the real person?

    .venv/bin/python benchmarks/leaks.py [--seeds 0,1,2,3,4,5] [--every 1,2] [--checkpoint F] [--write]

`benchmarks/temporal.py` and `detect_every.py` run one seed. But the fake identity of a
track comes from (--seed, track id), and whether SFace finds it like the original depends
on which face was drawn: one seed can be clean where another is not. Here every bundled
sample (samples/*.mp4) is anonymized in the default gan configuration at each seed (and
each --detect-every), and `vidanon bench` counts, against the original:

- leak frames: frames where a face found in the output at an original face's place has
  the original identity (SFace cosine >= 0.363, at the original's landmarks or its own);
- faces >= 0.363: the share of the original's faces whose replacement, aligned at the
  original landmarks, reaches that cosine; privacy cos max: the highest such cosine.

With --write it replaces the "Leaks across seeds" section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from speed import fresh_processes, write_section  # noqa: E402

from vidanon.config import CoverConfig, DetectConfig, PipelineConfig  # noqa: E402
from vidanon.metrics.bench import run_bench  # noqa: E402
from vidanon.pipeline import anonymize_video  # noqa: E402

SECTION = "Leaks across seeds"


def run_one(src: Path, n: int, seed: int, work: Path, checkpoint: str | None = None) -> dict:
    """One sample anonymized at one --detect-every and seed, measured by `vidanon bench`."""
    cfg = PipelineConfig(detect=DetectConfig(every=n), cover=CoverConfig(mode="gan", seed=seed, checkpoint=checkpoint))
    dst = work / f"{src.stem}.{n}.{seed}.mp4"
    anonymize_video(src, dst, cfg, overwrite=True)
    r = run_bench(src, dst)
    return {
        "sample": src.name,
        "every": n,
        "seed": seed,
        "leaks": r.leak.count,
        "leak_frames": list(r.leak.frames),
        "frames": r.frames,
        "above": r.privacy.share_at_or_above or 0.0,
        "privacy_max": r.privacy.max,
        "realism": r.realism.share,
    }


def run(
    samples: list[Path], seeds: list[int], everies: list[int], work: Path, checkpoint: str | None = None
) -> list[dict]:
    """Every run in a fresh process (`fresh_processes`)."""
    rows = []
    with fresh_processes() as pool:
        for src in samples:
            for n in everies:
                for seed in seeds:
                    print(f"[{src.name}] every {n}, seed {seed} ...", file=sys.stderr, flush=True)
                    rows.append(pool.submit(run_one, src, n, seed, work, checkpoint).result())
    return rows


def table(rows: list[dict]) -> str:
    out = [
        "| sample | --detect-every | --seed | leak frames | which | faces >= 0.363 | privacy cos max | realism |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        pm = "n/a" if r["privacy_max"] is None else f"{r['privacy_max']:.2f}"
        which = ", ".join(str(f) for f in r["leak_frames"][:10]) + (" ..." if len(r["leak_frames"]) > 10 else "")
        out.append(
            f"| {r['sample']} | {r['every']} | {r['seed']} | {r['leaks']} / {r['frames']} | {which or '-'} "
            f"| {100 * r['above']:.1f}% | {pm} | {_pct(r['realism'])} |"
        )
    out.append("")
    for sample in dict.fromkeys(r["sample"] for r in rows):
        for n in dict.fromkeys(r["every"] for r in rows):
            got = [r["realism"] for r in rows if r["sample"] == sample and r["every"] == n and r["realism"] is not None]
            if got:
                out.append(
                    f"- {sample}, every {n}: realism {100 * min(got):.1f}-{100 * max(got):.1f}% over "
                    f"{len(got)} seeds (mean {100 * sum(got) / len(got):.1f}%)"
                )
    return "\n".join(out) + "\n"


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}%"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", nargs="*", type=Path, default=sorted((ROOT / "samples").glob("*.mp4")))
    ap.add_argument("--seeds", default="0,1,2,3,4,5", help="run seeds, comma-separated")
    ap.add_argument("--every", default="1,2", help="values of --detect-every, comma-separated")
    ap.add_argument("--checkpoint", help="generator checkpoint (default: the bundled one)")
    ap.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    args = ap.parse_args()
    seeds = [int(v) for v in args.seeds.split(",")]
    everies = [int(v) for v in args.every.split(",")]
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="vidanon-leaks-") as tmp:
        rows = run(args.samples, seeds, everies, Path(tmp), args.checkpoint)
    body = (
        f"`.venv/bin/python benchmarks/leaks.py --seeds {args.seeds} --every {args.every}"
        + (f" --checkpoint {args.checkpoint}" if args.checkpoint else "")
        + f"`, "
        f"{time.strftime('%Y-%m-%d')}, {platform.machine()}; total {time.perf_counter() - t0:.0f} s. "
        "Default gan configuration per seed; leak frames, the share of faces at or above the same-person "
        "cosine, the highest cosine and realism (the share of the original's faces YuNet still finds) by "
        "`vidanon bench` against the original (tracks recomputed on it).\n\n" + table(rows)
    )
    print(f"## {SECTION}\n\n{body}")
    if args.write:
        write_section(SECTION, body)


if __name__ == "__main__":
    main()
