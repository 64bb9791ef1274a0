"""End-to-end `vidanon bench` on small real videos made by the tests."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from _media import CLIP_FRAMES, build_clips, clip_frames, photos_or_skip, write_video  # noqa: E402

from vidanon.errors import InputError, OutputError  # noqa: E402
from vidanon.metrics.bench import BenchConfig, run_bench  # noqa: E402

ALL_FRAMES = list(range(CLIP_FRAMES))


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    from vidanon.detect.yunet import YuNetDetector

    folder = tmp_path_factory.mktemp("bench")
    paths, boxes = build_clips(folder, photos_or_skip(), YuNetDetector())
    return folder, paths, boxes


@pytest.fixture(scope="module")
def reports(clips):
    _, paths, _ = clips
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = run_bench(paths["original"], paths[name])
        return cache[name]

    return get


def test_against_itself_everything_leaks(reports):
    r = reports("original")
    assert r.frames == CLIP_FRAMES and r.faces == CLIP_FRAMES and r.warnings == []
    assert r.tracks_source == "recomputed"
    assert r.privacy.share_at_or_above == 1.0
    assert r.privacy.mean == pytest.approx(1.0, abs=1e-4)
    assert r.leak.frames == ALL_FRAMES
    assert r.realism.share == 1.0
    assert r.identity[1].mean > 0.8 and r.identity[5].mean > 0.7
    assert r.identity[30].pairs == 0 and r.identity[30].mean is None  # clip shorter than 30 frames
    assert r.flicker.pairs == CLIP_FRAMES - 1
    assert r.flicker.ratio == pytest.approx(1.0) and r.flicker.ratio_lowpass == pytest.approx(1.0)
    assert r.flicker.original > 0 and 0 < r.flicker.original_lowpass < r.flicker.original


def test_black_boxes_hide_everything(reports):
    r = reports("black")
    assert r.leak.count == 0
    assert r.realism.share <= 0.1
    assert r.privacy.share_at_or_above == 0.0
    assert r.privacy.max < 0.363


def test_changing_identity_is_less_consistent(reports):
    same, varying = reports("same_swap"), reports("varying_swap")
    for r in (same, varying):
        assert r.leak.count == 0 and r.privacy.share_at_or_above == 0.0
        assert r.realism.share >= 0.8  # pasted real faces are still faces
    assert same.identity[1].mean > 0.7
    assert varying.identity[1].mean < 0.363
    assert same.identity[1].mean - varying.identity[1].mean > 0.4
    assert same.identity[5].p5 > varying.identity[5].p5
    assert varying.flicker.ratio > same.flicker.ratio
    assert varying.flicker.ratio_lowpass > same.flicker.ratio_lowpass


def test_noise_flickers(reports):
    r, base = reports("noise"), reports("original")
    assert r.flicker.ratio > 3.0 > base.flicker.ratio
    assert r.flicker.original == pytest.approx(base.flicker.original)


def test_report_is_json(reports):
    d = json.loads(json.dumps(reports("varying_swap").to_dict()))
    assert set(d["identity"]["lags"]) == {"1", "5", "30"}
    assert d["leak"]["count"] == 0
    assert len(d["series"]["flicker"]) == len(d["series"]["flicker_lowpass"]) == CLIP_FRAMES - 1
    assert d["flicker"]["ratio_lowpass"] > 0
    assert "series" not in reports("original").to_dict(series=False)


def _tracks_doc(boxes, width, height, frames=CLIP_FRAMES):
    return {
        "version": 1,
        "video": {"width": width, "height": height, "time_base": "1/12", "frames": frames},
        "frames": [
            {
                "index": i,
                "pts": i,
                "faces": [{"track_id": 7, "xyxy": [float(v) for v in b[0]], "score": 0.9, "state": "detected"}],
            }
            for i, b in enumerate(boxes)
        ],
    }


def test_tracks_file(clips, tmp_path):
    _, paths, boxes = clips
    tracks = tmp_path / "t.json"
    tracks.write_text(json.dumps(_tracks_doc(boxes, 288, 240)))
    r = run_bench(paths["original"], paths["black"], tracks)
    assert r.tracks_source == "file" and list(r.tracks) == [7]
    assert r.faces == CLIP_FRAMES and r.leak.count == 0 and r.warnings == []
    # no landmarks in the file: canonical positions are used, the face still matches itself
    r = run_bench(paths["original"], paths["original"], tracks, max_frames=4)
    assert r.frames == 4 and r.privacy.share_at_or_above == 1.0 and r.leak.frames == [0, 1, 2, 3]
    tracks.write_text(json.dumps(_tracks_doc(boxes, 640, 480)))
    with pytest.raises(InputError, match="640x480"):
        run_bench(paths["original"], paths["original"], tracks)


def test_a_tracks_file_that_lacks_faces_does_not_hide_leaks(clips, tmp_path):
    """A tracks file of another clip, cut short or edited must not hide a leak: the faces the
    detector finds in the original that the file lacks are measured too, and the run says so.
    Here the "anonymized" video is the original and the file lists no face, or frames only up
    to 2 (and frames past the video's end)."""
    _, paths, boxes = clips
    tracks = tmp_path / "t.json"
    tracks.write_text(json.dumps({"version": 1, "video": {"width": 288, "height": 240}, "frames": []}))
    r = run_bench(paths["original"], paths["original"], tracks)
    assert r.leak.frames == ALL_FRAMES and r.faces == CLIP_FRAMES
    assert any(f"lacks {CLIP_FRAMES} face(s)" in w for w in r.warnings), r.warnings
    doc = _tracks_doc(boxes[:3], 288, 240, frames=None)
    doc["frames"].append({"index": CLIP_FRAMES + 5, "pts": 0, "faces": []})
    tracks.write_text(json.dumps(doc))
    r = run_bench(paths["original"], paths["original"], tracks)
    assert r.leak.frames == ALL_FRAMES and r.faces == CLIP_FRAMES  # the listed faces are not counted twice
    assert any(f"lacks {CLIP_FRAMES - 3} face(s)" in w for w in r.warnings), r.warnings
    assert any(f"frames up to {CLIP_FRAMES + 5}" in w for w in r.warnings), r.warnings


@pytest.mark.parametrize("box", [[float("nan"), 0, 10, 10], [0, 0, 1e12, 10]], ids=["nan", "huge"])
def test_a_tracks_file_with_broken_boxes_is_refused(clips, tmp_path, box):
    _, paths, boxes = clips
    doc = _tracks_doc(boxes[:2], 288, 240)
    doc["frames"][1]["faces"][0]["xyxy"] = box
    tracks = tmp_path / "t.json"
    tracks.write_text(json.dumps(doc))
    with pytest.raises(InputError, match="frame entry 1 is malformed"):
        run_bench(paths["original"], paths["original"], tracks)


def test_display_rotation_is_applied(clips, tmp_path):
    """A phone video stored sideways is compared upright, like the pipeline's tracks."""
    _, paths, boxes = clips
    frames = clip_frames(photos_or_skip())[:4]
    rotated = write_video(tmp_path / "rot90.mp4", frames, rotation=90)
    tracks = tmp_path / "t.json"
    tracks.write_text(json.dumps(_tracks_doc(boxes[:4], 288, 240, frames=4)))
    r = run_bench(rotated, paths["original"], tracks, max_frames=4)
    assert (r.width, r.height) == (288, 240)
    assert r.privacy.share_at_or_above == 1.0 and r.leak.frames == [0, 1, 2, 3]


def test_frame_count_mismatch_compares_prefix(clips, tmp_path):
    _, paths, _ = clips
    short = write_video(tmp_path / "short.mp4", [np.zeros((240, 288, 3), np.uint8)] * 5)
    r = run_bench(paths["original"], short, cfg=BenchConfig(lags=(1,)))
    assert r.frames == 5 and len(r.warnings) == 1 and "compared the first 5" in r.warnings[0]
    assert r.leak.count == 0 and r.realism.share == 0.0


def test_dropped_frame_is_reported(tmp_path):
    frames = clip_frames(photos_or_skip())[:6]
    original = write_video(tmp_path / "o.mp4", frames)
    dropped = write_video(tmp_path / "d.mp4", frames[:2] + frames[3:], pts=[0, 1, 3, 4, 5])
    r = run_bench(original, dropped, cfg=BenchConfig(lags=(1,)))
    assert any("drift apart at frame 2" in w for w in r.warnings)
    assert any("compared the first 5" in w for w in r.warnings)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda d, p: (p["original"], d / "missing.mp4"), "not found"),
        (lambda d, p: (p["original"], _text(d / "notes.mp4")), "cannot open"),
        (
            lambda d, p: (p["original"], write_video(d / "big.mp4", [np.zeros((256, 320, 3), np.uint8)] * 2)),
            "differ in size",
        ),
        (lambda d, p: (d / "missing.mp4", p["original"]), "not found"),
    ],
)
def test_bad_inputs(clips, tmp_path, make, match):
    _, paths, _ = clips
    a, b = make(tmp_path, paths)
    with pytest.raises(InputError, match=match):
        run_bench(a, b)


def test_bad_arguments(clips, tmp_path):
    _, paths, _ = clips
    with pytest.raises(InputError, match="max_frames"):
        run_bench(paths["original"], paths["original"], max_frames=0)
    with pytest.raises(InputError, match="tracks file not found"):
        run_bench(paths["original"], paths["original"], tmp_path / "none.json")


def _text(path: Path) -> Path:
    path.write_text("not a video\n")
    return path


def test_command(clips, tmp_path):
    import typer
    from typer.testing import CliRunner

    from vidanon.metrics.command import bench_cmd

    app = typer.Typer()
    app.command("bench")(bench_cmd)
    app.command("other")(lambda: None)  # two commands: 'bench' stays a subcommand
    _, paths, _ = clips
    out_json, out_png = tmp_path / "r.json", tmp_path / "r.png"
    args = ["bench", str(paths["original"]), str(paths["black"]), "--json", str(out_json), "--plot", str(out_png)]
    res = CliRunner().invoke(app, args + ["--max-frames", "3"])
    assert res.exit_code == 0, res.output
    for word in ("privacy", "leak", "realism", "identity", "flicker", "0 of 3 frames"):
        assert word in res.output
    assert json.loads(out_json.read_text())["video"]["frames"] == 3
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    res = CliRunner().invoke(app, ["bench", str(paths["original"]), str(tmp_path / "nope.mp4")])
    assert isinstance(res.exception, InputError)
    # side files that could not be written are refused before the measurement: nothing written
    for extra, needle in (
        (["--plot", str(tmp_path / "nodir" / "p.png")], "does not exist"),
        (["--plot", str(tmp_path / "p.unknownext")], "image extension"),
    ):
        out_json.unlink(missing_ok=True)
        res = CliRunner().invoke(app, args[:3] + ["--json", str(out_json)] + extra)
        assert isinstance(res.exception, OutputError) and needle in str(res.exception), res.exception
        assert not out_json.exists()


def _benchmark_module(name: str):
    """benchmarks/<name>.py loaded as the module bench_<name> (the benchmarks are scripts, not a package)."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[f"bench_{name}"] = mod
    spec.loader.exec_module(mod)
    return mod


def test_temporal_results_section(reports):
    t = _benchmark_module("temporal")
    doc = "# Benchmarks\n\n## Speed\n\nfast\n\n## Temporal consistency\n\nold\n### detail\nold\n\n## Other\n\nkeep\n"
    out = t.replace_section(doc, t.SECTION, "new")
    assert out == "# Benchmarks\n\n## Speed\n\nfast\n\n## Temporal consistency\n\nnew\n\n## Other\n\nkeep\n"
    assert t.replace_section("# Benchmarks\n", t.SECTION, "new") == "# Benchmarks\n\n## Temporal consistency\n\nnew\n"
    md = t.table([("clip.mp4", "blur (reference)", reports("black"), 12.0)])
    assert md.count("\n") == 3 and "| clip.mp4 | blur (reference) |" in md and f"| 0 / {CLIP_FRAMES} |" in md
    vs = t.variants(None, "cpu", 0)
    assert [v.cfg.cover.mode for v in vs] == ["gan"] * 9 + ["blur"]
    # the default of each mode (motion in gan mode, not in blur mode) and the One-Euro-only pair
    assert [v.cfg.track.motion and v.cfg.track.smoothing for v in vs] == [True, False, False, False] + [True] * 5 + [
        False
    ]
    # the blend and regeneration rows, the default's among them
    from vidanon.config import CoverConfig

    cover = [(v.cfg.cover.temporal_blend, v.cfg.cover.regenerate_every) for v in vs[4:9]]
    default = CoverConfig()
    assert cover == [(1.0, 4), (0.5, 1), (0.1, 1), (default.temporal_blend, default.regenerate_every), (0.01, 4)]


def test_detect_every_counts_covered_faces(people_clip, tmp_path):
    """benchmarks/detect_every.py's recall figure: the share of the original's faces that a
    run's tracks cover. A real run covers all of them; the same tracks shrunk (a cover half the
    face's size) cover almost none, so the figure can fail. Detecting every frame: with
    --detect-every 2, a face that YuNet finds only in skipped frames (edge-cut faces whose
    detection flickers) is missed, the recall cost the benchmark reports; in 4 of 22
    encodings of this clip one or two of its ~133 faces were such."""
    from vidanon.config import CoverConfig, DetectConfig, PipelineConfig
    from vidanon.pipeline import anonymize_video

    mod = _benchmark_module("detect_every")
    ref = mod.reference_faces(people_clip)
    tracks = tmp_path / "t.json"
    cfg = PipelineConfig(detect=DetectConfig(every=1), cover=CoverConfig(mode="blur"))
    anonymize_video(people_clip, tmp_path / "o.mp4", cfg, tracks_path=tracks)
    hit, total = mod.covered_share(ref, tracks, cfg.cover.mask_scale)
    assert total > 50 and hit == total
    hit_small, _ = mod.covered_share(ref, tracks, 0.5)
    assert hit_small < 0.1 * total


def test_stress_scenes_show_faces_where_they_should(detector):
    """benchmarks/stress.py's scenes are what they say: one frame size each, faces in the
    frames meant to show them and none in the frames meant to hide them."""
    stress = _benchmark_module("stress")
    made = stress.scenes()
    for name, make in made.items():
        frames = make()
        assert len(frames) >= 30 and len({f.shape for f in frames}) == 1, name
    flash = made["flash"]()
    assert [i for i, f in enumerate(flash) if len(detector.detect(f))] == [0, 7, 12, 13, 20, 29]
    back = made["shot_back_odd"]()
    assert len(detector.detect(back[21])) >= 3 and not len(detector.detect(back[20]))
