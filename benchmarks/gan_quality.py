"""Quality figures of the face generator, and a contact sheet.

    .venv/bin/python benchmarks/gan_quality.py [--checkpoint PATH] [--sheet gan_quality.png]

Two face sets:
  held-out: 16 faces drawn from the DCGAN teacher with a seed the training never
      uses, upsampled 4x (256x256 frames) so that YuNet and SFace see them at a
      usable size;
  photos: every face YuNet finds in the real multi-person photos
      (samples/photos/*.jpg, else /tmp/npmx/package/demo/sample*.jpg).

Figures (SFace cosine, OpenCV's same-identity threshold 0.363; every face is
embedded with the ORIGINAL face's landmarks in both images):
  privacy    cos(original, replacement): share below 0.363 (goal >= 99%), mean (goal < 0.15)
  diversity  cos(replacement with z_a, with z_b) on the same face, over every pair of
             --z-count z (6 pairs per face by default): share below 0.363 (goal >= 95%)
  stability  same z, detection shifted by +-2 crop pixels in x and y, and scaled
             by +-5%: mean cos to the unshifted replacement (goal >= 0.6)
  realism    share of the faces YuNet finds in the original that it finds again
             (IoU > 0.5) in the replaced image (goal >= 90%)
  pose       mean distance of the 5 landmarks YuNet finds on a replaced face from the
             original face's, in units of the original's eye distance (lower: the
             fake face follows the head's pose more closely; no goal)
  guard      share of faces whose first z the identity guard replaced (the figures
             above are measured with the guard on, as `vidanon anonymize` runs)

The contact sheet has one row per face: original crop, masked generator input,
4 outputs for 4 different z (crop space), and the face pasted back into the image.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vidanon.anonymize import align  # noqa: E402
from vidanon.anonymize.gan import GanCoverer  # noqa: E402
from vidanon.config import CoverConfig, DetectConfig  # noqa: E402
from vidanon.detect.yunet import YuNetDetector  # noqa: E402
from vidanon.metrics.sface import SAME_IDENTITY_THRESHOLD, SFace  # noqa: E402
from vidanon.metrics.tracks import iou_matrix  # noqa: E402
from vidanon.types import FaceDetections  # noqa: E402

HELD_OUT_SEED = 987_654_321  # training seeds are small integers
UPSAMPLE = 4


def photo_paths() -> list[Path]:
    paths = sorted((ROOT / "samples" / "photos").glob("*.jpg"))
    return paths or sorted(Path("/tmp/npmx/package/demo").glob("sample*.jpg"))


def held_out_frames(n: int) -> list[np.ndarray]:
    from vidanon.train.data import TeacherFaces

    faces = TeacherFaces(HELD_OUT_SEED).sample(n)
    return [cv2.resize(f.image, None, fx=UPSAMPLE, fy=UPSAMPLE, interpolation=cv2.INTER_CUBIC) for f in faces]


def with_ids(d: FaceDetections) -> FaceDetections:
    return FaceDetections(d.xyxy, d.score, d.landmarks, np.arange(len(d)), d.state)


def jittered(d: FaceDetections, i: int, res: int, crop_factor: float, dx: float, dy: float, s: float) -> FaceDetections:
    """Face i moved by (dx, dy) crop pixels and scaled by s about its centre."""
    box = d.xyxy[i].astype(np.float64)
    px = (box[3] - box[1]) * crop_factor / res  # frame pixels per crop pixel
    c = (box[:2] + box[2:]) / 2
    xy = d.xyxy.copy()
    lm = d.landmarks.copy()
    xy[i] = np.concatenate([(box[:2] - c) * s + c, (box[2:] - c) * s + c]) + np.array([dx, dy, dx, dy]) * px
    lm[i] = (d.landmarks[i] - c) * s + c + np.array([dx, dy]) * px
    return FaceDetections(xy, d.score, lm, d.track_id, d.state)


iou = iou_matrix


def crop_rows(
    cov: GanCoverer, frame: np.ndarray, d: FaceDetections, seeds: list[int], out_frame: np.ndarray
) -> list[np.ndarray]:
    """Contact-sheet rows (crop space) for every face of a frame."""
    g = cov.gcfg
    crops = align.make_crops(frame, d.xyxy, d.landmarks, g.resolution, g.crop_factor, cov.cfg.mask_scale)
    from vidanon.anonymize.latents import latents_for_faces

    outs = [cov.generate(crops, latents_for_faces(s, d.track_id, g.z_dim, 0, False)) for s in seeds]
    pasted = align.make_crops(out_frame, d.xyxy, d.landmarks, g.resolution, g.crop_factor, cov.cfg.mask_scale).images
    rows = []
    for i in range(len(d)):
        masked = (crops.images[i] * (1 - crops.masks[i][..., None])).astype(np.uint8)
        tiles = [crops.images[i], masked] + [o[i] for o in outs] + [pasted[i]]
        rows.append(np.concatenate(tiles, axis=1))
    return rows


def evaluate(
    cov: GanCoverer, frames: list[np.ndarray], det: YuNetDetector, sface: SFace, seed: int, n_z: int = 4
) -> tuple[dict, list]:
    g = cov.gcfg
    priv, div, stab, pose, found, total, redrawn = [], [], [], [], 0, 0, 0
    rows = []
    for frame in frames:
        d = with_ids(det.detect(frame))
        if not len(d):
            continue
        cov.redraws, cov.tried, cov.checked = {}, {}, {}  # new people in every frame (ids restart at 0)
        base = cov.cover(frame, d, 0)
        redrawn += sum(1 for v in cov.redraws.values() if v)
        e_orig, e_base = sface.embed(frame, d), sface.embed(base, d)
        priv += list(np.sum(e_orig * e_base, 1))
        # every pair of n_z seeds on the same faces: n_z (n_z - 1) / 2 pairs per face
        embs = [e_base]
        for k in range(1, n_z):
            other = GanCoverer.__new__(GanCoverer)
            other.__dict__.update(cov.__dict__)
            other.cfg = CoverConfig(**{**cov.cfg.__dict__, "seed": seed + k})
            other.redraws, other.tried, other.checked = {}, {}, {}  # the identity guard checks each seed's faces anew
            embs.append(sface.embed(other.cover(frame, d, 0), d))
        for a in range(n_z):
            for b in range(a + 1, n_z):
                div += list(np.sum(embs[a] * embs[b], 1))
        for i in range(len(d)):
            sims = []
            for dx, dy, s in ((2, 0, 1), (-2, 0, 1), (0, 2, 1), (0, -2, 1), (0, 0, 1.05), (0, 0, 0.95)):
                j = jittered(d, i, g.resolution, g.crop_factor, dx, dy, s)
                sims.append(float(np.dot(sface.embed(cov.cover(frame, j, 0), d[i])[0], e_base[i])))
            stab.append(float(np.mean(sims)))
        after = det.detect(base)
        total += len(d)
        if len(after):
            match = iou(d.xyxy, after.xyxy)
            found += int((match > 0.5).any(axis=1).sum())
            for i, j in enumerate(match.argmax(axis=1)):
                if match[i, j] > 0.5:
                    eyes = float(np.linalg.norm(d.landmarks[i, 0] - d.landmarks[i, 1]))
                    err = np.linalg.norm(after.landmarks[j] - d.landmarks[i], axis=1).mean()
                    pose.append(float(err / max(eyes, 1.0)))
        rows += crop_rows(cov, frame, d, [seed, seed + 1, seed + 2, seed + 3], base)
    priv, div = np.array(priv), np.array(div)
    t = SAME_IDENTITY_THRESHOLD
    figures = {
        "faces": int(total),
        "z_pairs": int(len(div)),
        "privacy_below_thr": float((priv < t).mean()),
        "privacy_mean_cos": float(priv.mean()),
        "privacy_max_cos": float(priv.max()),
        "diversity_below_thr": float((div < t).mean()),
        "diversity_mean_cos": float(div.mean()),
        "stability_mean_cos": float(np.mean(stab)),
        "stability_min_cos": float(np.min(stab)),
        "realism_redetected": float(found / max(total, 1)),
        "pose_landmark_error": float(np.mean(pose)) if pose else float("nan"),
        "guard_redrawn": float(redrawn / max(total, 1)),
    }
    return figures, rows


GOALS = {
    "privacy_below_thr": (">=", 0.99),
    "privacy_mean_cos": ("<", 0.15),
    "diversity_below_thr": (">=", 0.95),
    "stability_mean_cos": (">=", 0.6),
    "realism_redetected": (">=", 0.90),
}


def _ok(key: str, v: float) -> str:
    if key not in GOALS:
        return ""
    op, goal = GOALS[key]
    ok = v >= goal if op == ">=" else v < goal
    return f"{'PASS' if ok else 'FAIL'} (goal {op} {goal})"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", default=None, help="generator checkpoint (default: the bundled one)")
    ap.add_argument("--sheet", default="gan_quality.png", help="contact sheet PNG to write")
    ap.add_argument("--json", default=None, help="also write the figures as JSON here")
    ap.add_argument("--faces", type=int, default=16, help="held-out teacher faces")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--z-count", type=int, default=4, help="z per face for diversity (every pair is compared)")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    cov = GanCoverer(CoverConfig(mode="gan", checkpoint=args.checkpoint, seed=args.seed))
    det = YuNetDetector(DetectConfig())
    sface = SFace()
    sets = {
        "held-out": held_out_frames(args.faces),
        "photos": [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in photo_paths()],
    }
    report, sheet_rows = {}, []
    for name, frames in sets.items():
        figures, rows = evaluate(cov, frames, det, sface, args.seed, max(2, args.z_count))
        report[name] = figures
        sheet_rows += rows
    print(f"checkpoint: {args.checkpoint or 'bundled'}  resolution {cov.gcfg.resolution}")
    for name, figures in report.items():
        print(f"[{name}] {figures['faces']} faces, {figures['z_pairs']} z pairs")
        for k, v in figures.items():
            if k not in ("faces", "z_pairs"):
                print(f"  {k:22s} {v:7.3f}  {_ok(k, v)}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    if sheet_rows:
        sheet = np.concatenate(sheet_rows, axis=0)
        sheet = cv2.resize(sheet, None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST)
        cv2.imwrite(args.sheet, cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
        print(f"contact sheet: {args.sheet} (columns: original, masked input, z1..z4, pasted back)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
