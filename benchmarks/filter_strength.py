"""How often YuNet still finds a face after each classic filter.

Runs every bundled photo at 4 widths (240-960 px) and 3 pan positions, covers
the faces YuNet finds, and counts covered faces that YuNet finds again at the
same place (IoU > 0.3). The filter strengths in vidanon/anonymize/filters.py
are chosen so that this count is 0.

    .venv/bin/python benchmarks/filter_strength.py
"""

from __future__ import annotations

import numpy as np

from vidanon.anonymize.filters import apply_filter
from vidanon.config import CoverConfig
from vidanon.detect.yunet import YuNetDetector
from vidanon.metrics.tracks import iou_matrix
from vidanon.synth import PHOTO_DIR, pan_frame, photo


def _iou_any(a: np.ndarray, b: np.ndarray) -> int:
    return int((iou_matrix(a, b) > 0.3).any(axis=1).sum())


def main() -> None:
    det = YuNetDetector()
    frames = [
        pan_frame(photo(p.name), (w, w * 9 // 16), t)
        for p in sorted(PHOTO_DIR.glob("*.jpg"))
        for w in (240, 320, 480, 960)
        for t in (0.0, 0.5, 1.0)
    ]
    print("| filter | faces covered | still detected |\n| --- | --- | --- |")
    for mode in ("blur", "pixelate", "solid"):
        total = found = 0
        for im in frames:
            faces = det.detect(im)
            if not len(faces):
                continue
            out = det.detect(apply_filter(im, faces, CoverConfig(mode=mode)))
            total += len(faces)
            found += _iou_any(faces.xyxy, out.xyxy) if len(out) else 0
        print(f"| {mode} | {total} | {found} |")


if __name__ == "__main__":
    main()
