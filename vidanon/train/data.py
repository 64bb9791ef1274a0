"""Training faces: drawn from the DCGAN teacher, or read from a folder.

Both sources detect faces with our own YuNet and return the same record, which
`make_batch` turns into generator crops with `align.make_crops`, the function
inference uses, so the framing matches.
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from vidanon.anonymize import align, morph
from vidanon.anonymize.dcgan import find_face, to_uint8
from vidanon.anonymize.generator import from_uint8
from vidanon.config import DetectConfig
from vidanon.errors import InputError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


@dataclass
class Face:
    """One training face: an RGB image, the face's box and landmarks, and its
    teacher latent when it was drawn from the teacher (None for real photos)."""

    image: np.ndarray
    xyxy: np.ndarray
    landmarks: np.ndarray
    z: np.ndarray | None = None


class TeacherFaces:
    """Faces drawn on the fly from the DCGAN teacher; draws without a detected face are dropped.

    Args:
        seed: seeds the teacher's z stream (a local torch.Generator).
        device: where the teacher runs.
        min_score: YuNet confidence required.
    """

    def __init__(self, seed: int, device: torch.device | str = "cpu", min_score: float = 0.6) -> None:
        from vidanon.anonymize.dcgan import load_teacher
        from vidanon.detect.yunet import YuNetDetector

        self.device = torch.device(device)
        self.teacher = load_teacher(self.device)
        self._detect_cfg = DetectConfig(score_threshold=min_score)
        self._local = threading.local()
        self._make_detector = YuNetDetector
        self.pool: ThreadPoolExecutor | None = None
        self.gen = torch.Generator(device="cpu")
        self.gen.manual_seed(int(seed))
        self.drawn = 0
        self.kept = 0
        self._lock = threading.Lock()  # several batch producers may draw at once

    def state(self) -> dict:
        """RNG state, so a resumed run continues the stream."""
        with self._lock:
            return {"rng": self.gen.get_state(), "drawn": self.drawn, "kept": self.kept}

    def load_state(self, state: dict) -> None:
        self.gen.set_state(state["rng"])
        self.drawn, self.kept = int(state["drawn"]), int(state["kept"])

    @torch.inference_mode()
    def draw(self, n: int) -> list[Face]:
        """Up to n faces (fewer when detection fails on some draws)."""
        with self._lock:
            z = torch.randn(n, self.teacher.nz, generator=self.gen)
        return self.detect(to_uint8(self.teacher(z.to(self.device))), z.numpy())

    def _detect_one(self, im: np.ndarray):
        det = getattr(self._local, "detector", None)
        if det is None:  # one detector per thread: cv2.FaceDetectorYN is not thread-safe
            det = self._local.detector = self._make_detector(self._detect_cfg)
        return find_face(det, im)

    def detect(self, imgs: np.ndarray, z: np.ndarray | None) -> list[Face]:
        """Faces found in teacher draws (the most confident one per draw)."""
        found = list(self.pool.map(self._detect_one, imgs)) if self.pool else [self._detect_one(im) for im in imgs]
        out = []
        for i, (im, hit) in enumerate(zip(imgs, found)):
            if hit is not None:
                out.append(Face(im, hit[0], hit[1], None if z is None else z[i]))
        with self._lock:
            self.drawn += len(imgs)
            self.kept += len(out)
        return out

    def sample(self, n: int) -> list[Face]:
        """Exactly n faces."""
        faces: list[Face] = []
        while len(faces) < n:
            faces += self.draw(n - len(faces) + 2)
        return faces[:n]


class FolderFaces:
    """Faces found by YuNet in a folder of the user's images (searched recursively).

    Args:
        folder: the folder.
        seed: seeds the sampling order.
        min_size: faces whose box height is below this many pixels are skipped.

    Raises:
        InputError: the folder is missing or holds no detectable face.
    """

    def __init__(self, folder: str | Path, seed: int, min_size: int = 24) -> None:
        from vidanon.detect.yunet import YuNetDetector

        root = Path(folder)
        if not root.is_dir():
            raise InputError(f"training folder not found: {root}")
        files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise InputError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {root}")
        det = YuNetDetector(DetectConfig(score_threshold=0.6))
        self.index: list[tuple[Path, np.ndarray, np.ndarray]] = []
        for path in files:
            bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if bgr is None:
                continue
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            # faces filling a tight crop are found more reliably with some border
            pad = max(rgb.shape[:2]) // 4
            padded = cv2.copyMakeBorder(rgb, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
            dets = det.detect(padded)
            for k in range(len(dets)):
                box = dets.xyxy[k] - pad
                if box[3] - box[1] >= min_size:
                    self.index.append((path, box, dets.landmarks[k] - pad))
        if not self.index:
            raise InputError(f"no face of at least {min_size} px found in the images under {root}")
        self._start(seed)

    @classmethod
    def from_index(cls, index: list[tuple[Path, np.ndarray, np.ndarray]], seed: int) -> FolderFaces:
        """A source over faces already found (another source's `index`): a data worker
        process does not search the folder again."""
        self = cls.__new__(cls)
        self.index = index
        self._start(seed)
        return self

    def _start(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self._cache: dict[Path, np.ndarray] = {}
        self._lock = threading.Lock()
        self.pool: ThreadPoolExecutor | None = None

    def state(self) -> dict:
        return {"rng": self.rng.bit_generator.state}

    def load_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]

    def _image(self, path: Path) -> np.ndarray:
        with self._lock:
            img = self._cache.get(path)
        if img is None:
            img = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
            with self._lock:
                if len(self._cache) > 512:
                    self._cache.clear()
                self._cache[path] = img
        return img

    def sample(self, n: int) -> list[Face]:
        with self._lock:
            idx = self.rng.integers(0, len(self.index), n)
        return [Face(self._image(self.index[i][0]), self.index[i][1], self.index[i][2]) for i in idx]


@dataclass
class Batch:
    """Generator inputs and targets as tensors.

    Attributes:
        image: (b, 3, r, r) target crops in [-1, 1].
        mask: (b, 1, r, r).
        heat: (b, 5, r, r).
        z: (b, z_dim) teacher latents, or None when the faces have none.
        valid: (b, 1, r, r), 1 where the crop lies inside its source image; the
            losses ignore the border padding (a teacher face fills its 64x64
            draw, so its crop is padded, and the padding is not a target).
        donor: (b, 3, r, r) in [-1, 1], the teacher face whose z each crop
            carries, aligned into the crop (the swapped-in face, or the crop's
            own face when not swapped); None when the faces have no z.
        natural, natural_valid: the crops and their valid maps as drawn, before
            any face swap (natural images: no blend seam, a face that belongs to
            its context), for a discriminator that should not learn to accept
            swap seams; None when no crop was swapped (then `image` is natural).
    """

    image: torch.Tensor
    mask: torch.Tensor
    heat: torch.Tensor
    z: torch.Tensor | None
    valid: torch.Tensor
    donor: torch.Tensor | None = None
    natural: torch.Tensor | None = None
    natural_valid: torch.Tensor | None = None

    def to(self, device: torch.device) -> Batch:
        def move(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(device, non_blocking=True)

        return Batch(
            move(self.image),
            move(self.mask),
            move(self.heat),
            move(self.z),
            move(self.valid),
            move(self.donor),
            move(self.natural),
            move(self.natural_valid),
        )

    def reals(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The natural crops and their valid maps (`image` itself when nothing was swapped)."""
        if self.natural is None:
            return self.image, self.valid
        return self.natural, self.natural_valid

    @staticmethod
    def cat(parts: list[Batch]) -> Batch:
        """One batch from several (z and donor only when every part has them)."""

        def join(ts: list[torch.Tensor | None]) -> torch.Tensor | None:
            return torch.cat(ts) if all(t is not None for t in ts) else None

        swapped = any(p.natural is not None for p in parts)
        return Batch(
            torch.cat([p.image for p in parts]),
            torch.cat([p.mask for p in parts]),
            torch.cat([p.heat for p in parts]),
            join([p.z for p in parts]),
            torch.cat([p.valid for p in parts]),
            join([p.donor for p in parts]),
            torch.cat([p.reals()[0] for p in parts]) if swapped else None,
            torch.cat([p.reals()[1] for p in parts]) if swapped else None,
        )


SWAP_SCALE = 0.9  # the donor's face covers this share of the face box's ellipse (then feathered)


def relight_params(rng: np.random.Generator) -> tuple:
    """One random lighting for `relight`: gamma, contrast, a side light (angle, strength),
    per-channel colour cast and overall exposure, each about as far as real footage
    strays from the teacher's evenly lit renders (a face lit blue by a screen, a dim
    room, a window to one side)."""
    return (
        float(np.exp(rng.normal(0.0, 0.25))),
        float(np.exp(rng.normal(0.0, 0.2))),
        float(rng.uniform(0.0, 2 * np.pi)),
        float(rng.uniform(0.0, 0.5)),
        np.exp(rng.normal(0.0, 0.12, 3)).astype(np.float32),
        float(np.exp(rng.uniform(-0.6, 0.25))),
    )


def relight(image: np.ndarray, params: tuple) -> np.ndarray:
    """An (r, r, 3) uint8 crop under another light (`relight_params`); a new array.

    The whole crop changes together, context and face alike, so the target shows
    the face as the context's light would show it. The donor, given to the
    generator unlit as at inference, must then be matched to that light by the
    generator (the photos' colour blotches: the teacher never showed it a blue or
    side-lit context).
    """
    gamma, contrast, angle, side, cast, exposure = params
    r = image.shape[0]
    x = (image.astype(np.float32) / 255.0) ** gamma
    x = (x - 0.5) * contrast + 0.5  # about mid-grey, not the crop's mean: the light is the crop's, not its content's
    ramp = np.linspace(-1.0, 1.0, r, dtype=np.float32)
    light = 1.0 + side * (np.cos(angle) * ramp[None, :] + np.sin(angle) * ramp[:, None])
    x = x * light[..., None] * (cast * exposure)
    return np.clip(x * 255.0, 0, 255).round().astype(np.uint8)


def make_batch(
    faces: list[Face],
    resolution: int,
    crop_factor: float,
    rng: np.random.Generator,
    mask_scale_range: tuple[float, float] = (1.0, 1.45),
    jitter: float = 0.03,
    flip: bool = True,
    swap_prob: float = 0.0,
    swap_scale: float = SWAP_SCALE,
    donor_warp: bool = False,
    fill_padding: bool = False,
    relight_prob: float = 0.0,
    donor_face_only: bool = False,
    donor_context: float = 0.0,
) -> Batch:
    """Aligned, augmented crops of `faces`.

    Augmentations: horizontal flip (not for teacher faces, whose z fixes the
    image), a random mask scale, and a small random shift/scale of the
    landmarks used for alignment (so the generator learns to be stable under
    the jitter of real detections; the heatmaps and target move with the crop).

    With `swap_prob` > 0 (teacher faces only), that share of the crops become
    face swaps: the inner face of another face of the batch (the donor) is
    blended into the crop (see `swap_faces`) and the crop takes the donor's
    z. The context outside the mask then says nothing about z, as at
    inference, where z is random: without swaps the teacher's context is a
    function of its own z, and the generator learns to ignore z. `swap_scale`
    sizes the blended region (`swap_alpha`). With `donor_warp`, a swapped-in
    face is first warped so that its landmarks land on the crop's
    (`morph.landmark_warp`, as inference warps donors for such a generator),
    and the batch's donor is that warped face. With `fill_padding`, each
    crop's padding past its source image is filled smoothly
    (`align.fill_padding`) before any swap; `valid` still marks it. With
    `relight_prob` > 0, that share of the crops is shown under another light
    (`relight`), after any swap and for the whole crop, while its donor stays as
    drawn: the generator learns to fit a donor to the context's light. With
    `donor_face_only`, every donor is its face alone (`align.face_only`, by its
    own landmarks) and a swap blends in the crop's face region only
    (`align.face_region`, feathered), not the box's ellipse with the donor's
    hair and background at its edge. With `donor_context` (a factor, 0: off),
    every donor is shown within its face region grown by it, around that a
    smooth fill of its crop's context as the generator sees it (after any swap
    and light: `align.in_context`), as inference shows donors to such a generator.
    """
    crops = []
    zs = []
    true_points = []  # each face's own landmarks in its crop (the crop was aligned on jittered ones)
    for f in faces:
        img, box, lm = f.image, f.xyxy.astype(np.float64), f.landmarks.astype(np.float64)
        if flip and f.z is None and rng.random() < 0.5:
            w = img.shape[1]
            img = img[:, ::-1]
            box = np.array([w - box[2], box[1], w - box[0], box[3]])
            lm = lm[align.FLIP_ORDER].copy()
            lm[:, 0] = w - lm[:, 0]
        size = box[3] - box[1]
        c = lm.mean(0)
        s = 1 + rng.uniform(-jitter, jitter)
        shift = rng.uniform(-jitter, jitter, 2) * size
        lm_j = (lm - c) * s + c + shift
        scale = rng.uniform(*mask_scale_range)
        cr = align.make_crops(
            np.ascontiguousarray(img), box[None], lm_j[None], resolution, crop_factor, scale, with_valid=True
        )
        crops.append(cr)
        true_points.append(align.apply_transform(cr.transforms[0], lm))
        if f.z is not None:
            zs.append(f.z)
    image = np.concatenate([c.images for c in crops])
    masks = np.concatenate([c.masks for c in crops])
    valid = np.concatenate([c.valid for c in crops])
    if fill_padding:
        for i in range(len(image)):
            image[i] = align.fill_padding(image[i], valid[i])
    z_all = np.stack(zs) if len(zs) == len(faces) else None
    donor = image if z_all is not None else None
    if donor is not None and donor_face_only:
        donor = np.stack([align.face_only(image[i], true_points[i]) for i in range(len(image))])
    natural = natural_valid = None
    donor_points = np.stack(true_points)  # where each donor's face is in its crop
    if swap_prob > 0 and z_all is not None and len(faces) > 1:
        chosen = np.flatnonzero(rng.random(len(faces)) < swap_prob)
        if len(chosen):
            # a donor for each chosen crop: any other face of the batch
            donors = (chosen + rng.integers(1, len(faces), len(chosen))) % len(faces)
            if donor_face_only:
                # the crop's face region by its own landmarks, feathered, never outside the mask
                alpha = np.stack([align.face_alpha(true_points[i], resolution) * masks[i] for i in chosen])
            else:
                alpha = np.stack(
                    [
                        swap_alpha(crops[i].transforms[0], faces[i].xyxy, masks[i], resolution, swap_scale)
                        for i in chosen
                    ]
                )
            # image, valid and z_all are this function's own arrays: keep the crops as drawn
            natural, natural_valid = image.copy(), valid.copy()
            given, given_valid = natural[donors], natural_valid[donors]
            # the input shows the donor's face alone; the blend takes the crop's face region of it
            shown = donor[donors] if donor_face_only else given
            if donor_warp:
                for k, (i, j) in enumerate(zip(chosen, donors)):
                    # the donor's features go where the crop's heatmaps put the face
                    maps = morph.warp_maps(true_points[j], crops[i].points[0], resolution)
                    given[k] = morph.apply(given[k], maps)
                    given_valid[k] = morph.apply(given_valid[k], maps, cv2.BORDER_CONSTANT)
                    if donor_face_only:
                        shown[k] = morph.apply(shown[k], maps)
            image[chosen], valid[chosen] = swap_faces(image[chosen], valid[chosen], given, given_valid, alpha)
            z_all[chosen] = z_all[donors]  # fancy indexing copies the right side first
            donor_points = donor_points.copy()
            for i, j in zip(chosen, donors):
                donor_points[i] = crops[i].points[0] if donor_warp else true_points[j]
            if not donor_face_only:  # a face-only donor array is already this function's own
                donor = natural.copy()
            donor[chosen] = shown
    if relight_prob > 0:
        lit = np.flatnonzero(rng.random(len(faces)) < relight_prob)
        if len(lit):
            image = image.copy()  # the donor may be the very array `image` was (no swap)
            for i in lit:
                params = relight_params(rng)
                image[i] = relight(image[i], params)
                if natural is not None:
                    natural[i] = relight(natural[i], params)
    if donor_context > 0 and donor is not None and not donor_face_only:
        donor = np.stack(
            [align.in_context(donor[i], donor_points[i], image[i], masks[i], donor_context) for i in range(len(image))]
        )
    t_img = from_uint8(image)
    t_mask = torch.from_numpy(masks)[:, None]
    t_heat = torch.from_numpy(np.concatenate([c.heatmaps for c in crops]))
    z = None if z_all is None else torch.from_numpy(z_all).float()
    t_valid = torch.from_numpy(valid)[:, None]
    t_donor = None if donor is None else from_uint8(donor)
    if natural is None:
        return Batch(t_img, t_mask, t_heat, z, t_valid, t_donor)
    t_natural, t_natural_valid = from_uint8(natural), torch.from_numpy(natural_valid)[:, None]
    return Batch(t_img, t_mask, t_heat, z, t_valid, t_donor, t_natural, t_natural_valid)


def swap_alpha(
    m: np.ndarray, xyxy: np.ndarray, mask: np.ndarray, resolution: int, scale: float = SWAP_SCALE
) -> np.ndarray:
    """Blend weight of a donor face in crop space: the face box's ellipse at
    `scale`, feathered, and never outside the generator's mask (so the seam is
    generated, not given)."""
    inner = align.crop_mask(m, np.asarray(xyxy, np.float64), scale, resolution)
    soft = cv2.GaussianBlur(inner, (0, 0), sigmaX=resolution / 40)
    return (soft * mask).astype(np.float32)


def swap_faces(
    image: np.ndarray, valid: np.ndarray, donor: np.ndarray, donor_valid: np.ndarray, alpha: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Blends each donor's inner face into its crop, colour-matched to the crop's own face.

    Crops are aligned to one template, so a donor's face lands on the crop's
    face. Each channel of the donor is shifted and scaled to the mean and
    spread of the crop's own pixels under `alpha` (skin tone and lighting
    follow the context; the features follow the donor).

    Args:
        image, donor: (n, r, r, 3) uint8 crops.
        valid, donor_valid: (n, r, r) float, 1 inside the source image.
        alpha: (n, r, r) donor weight.

    Returns:
        The blended crops (uint8) and their valid maps (a pixel is valid where
        every image it draws on is).
    """
    out = np.empty_like(image)
    a = alpha[..., None].astype(np.float32)
    for i in range(len(image)):
        w = a[i] / max(float(a[i].sum()), 1e-6)
        ctx, don = image[i].astype(np.float32), donor[i].astype(np.float32)
        mu_c, mu_d = (ctx * w).sum((0, 1)), (don * w).sum((0, 1))
        sd_c = np.sqrt(((ctx - mu_c) ** 2 * w).sum((0, 1))) + 1.0
        sd_d = np.sqrt(((don - mu_d) ** 2 * w).sum((0, 1))) + 1.0
        matched = (don - mu_d) * np.clip(sd_c / sd_d, 0.5, 2.0) + mu_c
        out[i] = np.clip(ctx * (1 - a[i]) + matched * a[i], 0, 255).round().astype(np.uint8)
    new_valid = valid * ((alpha < 0.02) | (donor_valid > 0.5))
    return out, new_valid.astype(np.float32)


@dataclass(frozen=True)
class BatchSpec:
    """What a batch is made of: its size, the generator's framing and `make_batch`'s settings.

    `folder_index` is a `FolderFaces.index` (its faces already found, so that worker
    processes do not each search the folder again; `procs.ProcessBatches`); None
    draws from the teacher.
    """

    batch_size: int
    resolution: int
    crop_factor: float
    swap_prob: float = 0.0
    swap_scale: float = SWAP_SCALE
    donor_warp: bool = False
    fill_padding: bool = False
    relight_prob: float = 0.0
    donor_face_only: bool = False
    donor_context: float = 0.0
    folder_index: tuple | None = None

    def make(self, faces: list[Face], rng: np.random.Generator) -> Batch:
        """The batch of `faces` (`make_batch` with these settings)."""
        return make_batch(
            faces,
            self.resolution,
            self.crop_factor,
            rng,
            swap_prob=self.swap_prob,
            swap_scale=self.swap_scale,
            donor_warp=self.donor_warp,
            fill_padding=self.fill_padding,
            relight_prob=self.relight_prob,
            donor_face_only=self.donor_face_only,
            donor_context=self.donor_context,
        )


def put_until_stopped(q, item, stop) -> None:
    """Puts `item` on the bounded queue `q` (a thread's or a process's) as soon as there is
    room, unless the event `stop` is set first."""
    while not stop.is_set():
        try:
            q.put(item, timeout=0.2)
            return
        except queue.Full:
            continue


class BatchMaker:
    """Batches from a face source, inline or prepared ahead by worker threads.

    With `workers` > 0, YuNet detection and crop making run on a thread pool
    (OpenCV releases the GIL) and a producer thread keeps `prefetch` batches
    ready, so a GPU is not left waiting on the CPU. The checkpointed data state
    is then up to `prefetch` batches ahead of the training step; a resumed run
    skips those faces, which does not matter for training. With several
    `producers`, batches are made concurrently (their order, not their
    content, then depends on timing): one producer cannot keep a GPU busy,
    because half of its work (crop geometry in numpy) holds the GIL while the
    other half (YuNet) does not.

    Args:
        source: TeacherFaces or FolderFaces.
        spec: the batches' size, framing and `make_batch` settings.
        rng: augmentation randomness.
        workers: threads for detection and crops (0: all inline).
        prefetch: batches prepared ahead when workers > 0.
        producers: threads that each make whole batches when workers > 0.
    """

    def __init__(
        self,
        source: TeacherFaces | FolderFaces,
        spec: BatchSpec,
        rng: np.random.Generator,
        workers: int = 0,
        prefetch: int = 3,
        producers: int = 1,
    ) -> None:
        if producers < 1:
            raise ValueError(f"producers must be >= 1, got {producers}")
        self.source = source
        self.spec = spec
        self.rng = rng
        self.workers = workers
        self.pool = ThreadPoolExecutor(workers) if workers > 0 else None
        source.pool = self.pool
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, prefetch))
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.producers = producers
        self._rng_lock = threading.Lock()

    def _make(self) -> Batch:
        faces = self.source.sample(self.spec.batch_size)
        if self.pool is None:
            return self._batch(faces, self.rng)
        n = max(1, min(self.workers, len(faces)))
        chunks = [faces[i::n] for i in range(n)]
        with self._rng_lock:
            seeds = self.rng.integers(0, 2**63 - 1, n)
        parts = list(self.pool.map(lambda a: self._batch(a[0], np.random.default_rng(a[1])), zip(chunks, seeds)))
        return Batch.cat(parts)

    def _batch(self, faces: list[Face], rng: np.random.Generator) -> Batch:
        return self.spec.make(faces, rng)

    def _produce(self) -> None:
        try:
            while not self._stop.is_set():
                put_until_stopped(self._queue, self._make(), self._stop)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            self._queue.put(exc)

    def next(self, block: bool = True) -> Batch | None:
        """The next batch; with block=False, None when none is ready yet (prefetching only)."""
        if self.pool is None:
            return self._make()
        if not self._threads:
            for i in range(self.producers):
                t = threading.Thread(target=self._produce, name=f"vidanon-batches-{i}", daemon=True)
                t.start()
                self._threads.append(t)
        try:
            item = self._queue.get(block=block)
        except queue.Empty:
            return None
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self) -> None:
        """Stops the producer thread and the pool."""
        self._stop.set()
        for t in self._threads:
            while t.is_alive():
                try:
                    self._queue.get(timeout=0.1)
                except queue.Empty:
                    pass
        self._threads = []
        if self.pool is not None:
            self.pool.shutdown(wait=True)
