"""Quality figures of the face generator, and a contact sheet.

    .venv/bin/python benchmarks/gan_quality.py [--checkpoint PATH] [--sheet gan_quality.png] [--seeds 6]

Two face sets:
  held-out: 16 faces drawn from the DCGAN teacher with a seed the training never
      uses, upsampled 4x (256x256 frames) so that YuNet and SFace see them at a
      usable size;
  photos: every face YuNet finds in the real multi-person photos
      (samples/photos/*.jpg, else /tmp/npmx/package/demo/sample*.jpg);
  lying: the same photos turned on their side (a quarter turn, alternately each way),
      their faces found as `vidanon bench` finds them (upright and at every turn; in the
      originals only at the turns' sure score): faces lying on their side get their
      generated face through the same path (until 2026-11-27 an upright one, across the
      head).

Every face of a set is its own track, so it gets its own z (from --seed and its id); its
other z come from seeds --seed + 1, + 2, + 3. One seed's 96 pairs move the diversity share by
a few percent from seed to seed: --seeds N pools N run seeds (--seed, --seed + 10, ...).

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
  tone       CIE76 colour difference (Lab) between the mean colour of the original's
             inner face (the middle 50% of its box) and the replacement's: how well
             the fake face takes the skin tone and light of its context (no goal;
             the original's own tone is the reference, not an input of the generator)
  seam       the colour step across the edge of the replaced region: the changed
             region's edge split into 16 sectors around the face, the mean Lab
             difference between a band just inside and a band just outside, over
             the sectors; the same bands on the original give seam_original (no goal)
  edge       the fine detail just inside the edge of the face's filter ellipse over that
             just outside (`edge_detail`): low where the replaced region ends in a soft
             fog, a disc on the hair; edge_original on the original (no goal)

The contact sheet has one row per face: original crop, masked generator input,
4 outputs for 4 different z (crop space), and the face pasted back into the image.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vidanon.anonymize import align  # noqa: E402
from vidanon.anonymize.gan import GanCoverer  # noqa: E402
from vidanon.config import TURNS, CoverConfig, DetectConfig  # noqa: E402
from vidanon.detect.turn import SURE, with_turns  # noqa: E402
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


def with_ids(d: FaceDetections, first: int = 0) -> FaceDetections:
    """d with track ids first, first + 1, ...: each face of a set its own id, so its own z.
    (Until 2026-12-07 every frame's ids restarted at 0, so the 16 held-out faces, one a frame,
    all got the same 4 z, and each seed's figures rode on a handful of donors: diversity on
    the photos read 80-99% by seed.)"""
    return FaceDetections(d.xyxy, d.score, d.landmarks, np.arange(first, first + len(d)), d.state)


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
SEAM_SECTORS = 16


def _lab(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)


def tone_delta(orig: np.ndarray, out: np.ndarray, box: np.ndarray) -> float:
    """Lab distance between the mean colours of the middle 50% of `box` in the two frames."""
    x0, y0, x1, y1 = box.astype(np.float64)
    cx, cy, hw, hh = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 4, (y1 - y0) / 4
    sl = np.s_[max(0, int(cy - hh)) : int(np.ceil(cy + hh)), max(0, int(cx - hw)) : int(np.ceil(cx + hw))]
    a, b = _lab(orig[sl]).reshape(-1, 3).mean(0), _lab(out[sl]).reshape(-1, 3).mean(0)
    return float(np.linalg.norm(a - b))


def seam_steps(orig: np.ndarray, out: np.ndarray, box: np.ndarray) -> tuple[float, float] | None:
    """(seam in `out`, the same bands in `orig`) for the replaced region around `box`; None
    if nothing around it changed."""
    h, w = orig.shape[:2]
    x0, y0, x1, y1 = box.astype(np.float64)
    cx, cy, size = (x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, y1 - y0)
    wx0, wy0 = max(0, int(cx - 1.6 * size)), max(0, int(cy - 1.6 * size))
    wx1, wy1 = min(w, int(cx + 1.6 * size)), min(h, int(cy + 1.6 * size))
    a, b = orig[wy0:wy1, wx0:wx1], out[wy0:wy1, wx0:wx1]
    changed = (np.abs(a.astype(np.int16) - b.astype(np.int16)).max(-1) > 2).astype(np.uint8)
    n, labels = cv2.connectedComponents(changed)
    at = labels[min(int(cy) - wy0, labels.shape[0] - 1), min(int(cx) - wx0, labels.shape[1] - 1)]
    if n < 2 or at == 0:
        return None
    region = (labels == at).astype(np.uint8)
    k = max(3, int(round(0.08 * size)) | 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    inside = region.astype(bool) & ~cv2.erode(region, kernel).astype(bool)
    outside = cv2.dilate(region, kernel).astype(bool) & ~region.astype(bool)
    ys, xs = np.mgrid[wy0:wy1, wx0:wx1]
    sector = ((np.arctan2(ys - cy, xs - cx) + np.pi) / (2 * np.pi) * SEAM_SECTORS).astype(int) % SEAM_SECTORS
    la, lb = _lab(a), _lab(b)
    steps_out, steps_orig = [], []
    for s in range(SEAM_SECTORS):
        i, o = inside & (sector == s), outside & (sector == s)
        if i.sum() < 4 or o.sum() < 4:
            continue
        steps_out.append(float(np.linalg.norm(lb[i].mean(0) - lb[o].mean(0))))
        steps_orig.append(float(np.linalg.norm(la[i].mean(0) - la[o].mean(0))))
    if not steps_out:
        return None
    return float(np.mean(steps_out)), float(np.mean(steps_orig))


def edge_detail(img: np.ndarray, box: np.ndarray, mask_scale: float) -> float | None:
    """The fine detail (grey minus its Gaussian blur of 3% of the box's height) just inside the
    edge of a face's filter ellipse, 0.8-1 of its radius, over that just outside, 1-1.2: about 1
    on a photo, low where the replaced region ends in a soft fog (a disc on the hair); None if
    either band is off the frame."""
    h, w = img.shape[:2]
    c, axes = align.ellipse_params(box.astype(np.float64), mask_scale)
    grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float32)
    fine = grey - cv2.GaussianBlur(grey, (0, 0), max(1.0, 0.03 * float(box[3] - box[1])))
    ys, xs = np.mgrid[0:h, 0:w]
    rho = np.sqrt(((xs - c[0]) / max(axes[0], 1e-6)) ** 2 + ((ys - c[1]) / max(axes[1], 1e-6)) ** 2)
    inner, outer = (rho >= 0.8) & (rho < 1.0), (rho >= 1.0) & (rho < 1.2)
    if inner.sum() < 16 or outer.sum() < 16:
        return None
    return float(np.sqrt((fine[inner] ** 2).mean()) / max(np.sqrt((fine[outer] ** 2).mean()), 1e-6))


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


class Turned:
    """A detector searching upright and at every turn (`with_turns`), keeping turned faces
    that score `least` or more."""

    def __init__(self, det: YuNetDetector, least: float = 0.0) -> None:
        self.det, self.least = det, least

    def detect(self, rgb: np.ndarray) -> FaceDetections:
        return with_turns(self.det, rgb, TURNS, least=self.least)[0]


def evaluate(
    cov: GanCoverer,
    frames: list[np.ndarray],
    det: YuNetDetector,
    sface: SFace,
    seed: int,
    n_z: int = 4,
    det_after=None,
) -> tuple[dict, list]:
    """Figures and contact-sheet rows of one face set; `det` finds the original faces,
    `det_after` (default: `det`) the replaced ones."""
    det_after = det_after or det
    g = cov.gcfg
    priv, div, stab, pose, found, total, redrawn = [], [], [], [], 0, 0, 0
    tone, seam, seam_orig, edge, edge_orig = [], [], [], [], []
    rows = []
    for frame in frames:
        d = with_ids(det.detect(frame), total)
        if not len(d):
            continue
        cov.forget_tracks()  # new people in every frame
        base = cov.cover(frame, d, 0)
        redrawn += sum(1 for v in cov.redraws.values() if v)
        e_orig, e_base = sface.embed(frame, d), sface.embed(base, d)
        priv += list(np.sum(e_orig * e_base, 1))
        # every pair of n_z seeds on the same faces: n_z (n_z - 1) / 2 pairs per face
        embs = [e_base]
        for k in range(1, n_z):
            other = copy.copy(cov)
            other.cfg = CoverConfig(**{**cov.cfg.__dict__, "seed": seed + k})
            other.forget_tracks()  # the identity guard checks each seed's faces anew, realism too
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
        for i in range(len(d)):
            tone.append(tone_delta(frame, base, d.xyxy[i]))
            steps = seam_steps(frame, base, d.xyxy[i])
            if steps is not None:
                seam.append(steps[0])
                seam_orig.append(steps[1])
            edges = [edge_detail(img, d.xyxy[i], cov.cfg.mask_scale) for img in (base, frame)]
            if None not in edges:
                edge.append(edges[0])
                edge_orig.append(edges[1])
        after = det_after.detect(base)
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
        "tone_delta_lab": float(np.mean(tone)),
        "seam_lab": float(np.mean(seam)) if seam else float("nan"),
        "seam_original_lab": float(np.mean(seam_orig)) if seam_orig else float("nan"),
        "edge_detail": float(np.mean(edge)) if edge else float("nan"),
        "edge_detail_original": float(np.mean(edge_orig)) if edge_orig else float("nan"),
    }
    return figures, rows


def pooled(runs: list[dict]) -> dict:
    """One seed's figures, or several seeds' on the same faces pooled: counts summed, maxima
    and minima kept, every other figure (a share or a mean over the same number of faces or
    pairs in each run) averaged."""
    out = {}
    for k in runs[0]:
        vals = [r[k] for r in runs]
        if k in ("faces", "z_pairs"):
            out[k] = int(sum(vals))
        elif k.endswith("_max_cos"):
            out[k] = float(max(vals))
        elif k.endswith("_min_cos"):
            out[k] = float(min(vals))
        else:
            out[k] = float(np.nanmean(vals))
    return out


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
    ap.add_argument(
        "--seeds",
        type=int,
        default=1,
        help="pool the figures over this many run seeds (--seed, --seed + 10, ...; the sheet shows the first)",
    )
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--z-count", type=int, default=4, help="z per face for diversity (every pair is compared)")
    ap.add_argument(
        "--mask-scale", type=float, default=None, help="covered region = face box x this (default: the CLI's)"
    )
    ap.add_argument("--donor-detail", type=float, default=None, help="the donor's detail finer than this (crop px)")
    ap.add_argument("--ring", type=float, default=None, help="outer share of the region mirrored from its surroundings")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    given = (("mask_scale", args.mask_scale), ("donor_detail", args.donor_detail), ("ring", args.ring))
    extra = {k: v for k, v in given if v is not None}
    cov = GanCoverer(CoverConfig(mode="gan", checkpoint=args.checkpoint, seed=args.seed, **extra))
    det = YuNetDetector(DetectConfig())
    sface = SFace()
    sets = {
        "held-out": held_out_frames(args.faces),
        "photos": [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in photo_paths()],
    }
    sets["lying"] = [np.ascontiguousarray(np.rot90(f, 1 if k % 2 == 0 else 3)) for k, f in enumerate(sets["photos"])]
    finders = {"lying": (Turned(det, SURE), Turned(det))}
    report, sheet_rows = {}, []
    seeds = [args.seed + 10 * k for k in range(max(1, args.seeds))]  # seed + 1..3 are its other z
    for name, frames in sets.items():
        found, found_after = finders.get(name, (det, det))
        runs = []
        for seed in seeds:
            cov.cfg = CoverConfig(**{**cov.cfg.__dict__, "seed": seed})
            figures, rows = evaluate(cov, frames, found, sface, seed, max(2, args.z_count), found_after)
            runs.append(figures)
            sheet_rows += rows if seed == seeds[0] else []
        report[name] = pooled(runs)
    print(f"checkpoint: {args.checkpoint or 'bundled'}  resolution {cov.gcfg.resolution}  seeds {seeds}")
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
