"""Quality measures behind `vidanon bench`: privacy, leaks, realism, identity consistency, flicker.

Modules:
    sface: SFace identity embeddings and cosine helpers (shared with the generator benchmarks).
    flicker: flow-compensated frame-to-frame change inside face regions.
    tracks: tracks-file reader and the standalone greedy IoU tracker.
    bench: `run_bench` (streams two videos in lockstep) and `BenchReport`.
    plot: the report plot, drawn with OpenCV.
    command: `bench_cmd`, the typer command.
"""
