"""Fuzz: mutated small videos never give a traceback, a hang, or a visible face.

"Visible" is identity-aware here (SFace, as `vidanon bench` counts leaks): on tiny
damaged clips YuNet sometimes scores a blurred head-shaped blob just above our low
threshold, which tells nothing about who it was. The plain detector check runs on
the larger clips of test_pipeline and test_robustness."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from conftest import decode_rgb, identity_leaks
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vidanon.errors import VidanonError
from vidanon.pipeline import anonymize_video
from vidanon.synth import photo, write_video

_SEEDS: dict[str, bytes] = {}


def _seed(media: Path, suffix: str) -> bytes:
    if suffix not in _SEEDS:
        p = write_video(media / f"fuzzseed{suffix}", [(photo("faceapi-sample5.jpg"), 8)], size=(320, 180))
        _SEEDS[suffix] = p.read_bytes()
    return _SEEDS[suffix]


mutation = st.one_of(
    st.tuples(st.just("flip"), st.lists(st.tuples(st.floats(0, 1), st.integers(1, 255)), min_size=1, max_size=40)),
    st.tuples(st.just("truncate"), st.floats(0.05, 0.98)),
    st.tuples(st.just("splice"), st.tuples(st.floats(0, 1), st.binary(min_size=1, max_size=300))),
    st.tuples(st.just("zero"), st.tuples(st.floats(0, 1), st.integers(1, 2000))),
)


def _mutate(data: bytes, m) -> bytes:
    kind, arg = m
    b = bytearray(data)
    if kind == "flip":
        for pos, x in arg:
            b[int(pos * (len(b) - 1))] ^= x
    elif kind == "truncate":
        b = b[: int(arg * len(b))]
    elif kind == "splice":
        pos = int(arg[0] * len(b))
        b[pos:pos] = arg[1]
    else:
        pos = int(arg[0] * len(b))
        b[pos : pos + arg[1]] = bytes(min(arg[1], len(b) - pos))
    return bytes(b)


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(m=mutation)
def test_mutated_video(media, tmp_path, detector, suffix, m):
    src = tmp_path / f"fuzz{suffix}"
    src.write_bytes(_mutate(_seed(media, suffix), m))
    before = src.read_bytes()
    out = tmp_path / f"out{suffix}"
    out.unlink(missing_ok=True)
    t0 = time.perf_counter()
    try:
        anonymize_video(src, out)
    except VidanonError:
        assert not out.exists()  # a refused input leaves nothing behind
    finally:
        assert time.perf_counter() - t0 < 30, "took too long"
        assert src.read_bytes() == before
        assert [p for p in tmp_path.iterdir() if ".vidanon-" in p.name] == []
    if out.exists():
        try:
            original = decode_rgb(src)
        except VidanonError:
            return
        assert identity_leaks(detector, original[: len(decode_rgb(out))], decode_rgb(out)) == []
