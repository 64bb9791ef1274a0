"""Rebuilds samples/people.mp4 and samples/handheld.mp4 from the bundled photos (see samples/README.md).

    .venv/bin/python samples/make_sample.py
"""

from __future__ import annotations

from pathlib import Path

from vidanon.synth import Occluder, handheld_frames, photo, write_frames, write_video

if __name__ == "__main__":
    out = Path(__file__).resolve().parent / "people.mp4"
    write_video(
        out,
        [(photo("faceapi-sample1.jpg"), 50), (photo("faceapi-sample5.jpg"), 50)],
        size=(640, 360),
        fps=25,
        # a pole passes in front of the left half for five frames: tracks must survive it
        occluders=(Occluder(20, 25, 0.0, 0.55),),
        crf=20,
    )
    print(out)
    # 6 s hand-held: drift, roll, zoom, a fast swing at 2.4-3 s, faces that stretch non-rigidly
    out = out.with_name("handheld.mp4")
    write_frames(out, handheld_frames(photo("faceapi-sample3.jpg"), 150), fps=25, crf=20, audio=True)
    print(out)
