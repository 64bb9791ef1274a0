"""Frozen settings, one dataclass per stage, validated on construction."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace

COVER_MODES = ("blur", "pixelate", "solid", "gan")
MASK_SHAPES = ("ellipse", "box")
Z_MODES = ("per-track", "per-frame")
PRECISIONS = ("auto", "fp32", "bf16")
X264_PRESETS = (
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
    "placebo",
)


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ValueError(msg)


DETECT_EVERY_MAX = 2
"""Detection every 3rd frame or sparser failed closed coverage on the samples: faces covered
99.7% (N=3), 99.2% (4), 97.8% (6 and 10) on the hand-held swing in blur mode, and in gan mode
a held face's generated stand-in reached SFace's same-person cosine (0.364) at N=3."""


TURNS = (90, 270, 180)
"""Clockwise turns of the frame searched besides the upright one (`vidanon.detect.turn`), the
quarter turns first: a head rolled sideways, lying down, is commoner than one upside down."""


@dataclass(frozen=True)
class DetectConfig:
    """Face detection.

    Attributes:
        backend: detector name, see `vidanon.detect.DETECTORS`: "yunet" runs YuNet
            in onnxruntime (in OpenCV where onnxruntime is not installed),
            "yunet-opencv" in OpenCV; the same faces either way.
        score_threshold: minimum confidence. Low on purpose: a false positive
            only covers a patch of background, a miss leaks a face.
        weak_threshold: faces of the upright pass scoring from this up to
            `score_threshold` continue a track whose place they overlap, and are
            dropped elsewhere (`FaceTracker.update`'s `weak`): a dim face scored
            0.32-0.78 from frame to frame on a stress clip and went bare once its
            hold ran out between its sure detections.
        max_size: frames whose longer side is larger are detected on a
            downscaled copy, and the boxes mapped back.
        nms_threshold: IoU above which overlapping detections are merged.
        every: run the detector on every Nth frame only; the tracker predicts
            (and covers, grown) the frames between. 1 detects every frame; at most
            DETECT_EVERY_MAX, the largest N that covered every face on the samples
            with no leak in either mode (`benchmarks/detect_every.py`).
        workers: detector threads, each with its own detector, working on the
            next frames while tracking consumes them in order; 0 picks a
            quarter of the cores, at most 3 (1, on the main thread, below 8
            cores). Same detections either way.
        turns: clockwise quarter and half turns (90, 180, 270) of the frame that
            are searched too, for faces rolled in the picture's plane (lying down,
            a tilted head or camera) that the upright pass misses from about 45
            degrees on (`vidanon.detect.turn`). Empty: upright only.
        turn_every: one turned pass every this many frames, the turns in
            rotation; all of them on the first and the last frame, at a scene cut
            and on a frame that changed as much (a face flashing into one frame),
            and a turn that found a face scoring `vidanon.detect.turn.SURE` is
            searched on every detected frame while that face may still be held. A
            face that only a turn finds is covered from the frame it entered (the
            lookahead is at least `turn_every` times the number of turns, and the
            frames since the turn's last pass are searched at it). A multiple of
            `every`. Default 2 (each turn every 6th frame): with YuNet in onnxruntime
            it cost 0.5 ms a frame more than 4 in blur mode at 720p on 2 cores
            (8.7 -> 9.2 ms of detection, frames/s within the run-to-run noise;
            0.85x as fast as upright only in `speed.py --upright`),
            and halves the frames a rolled face can be seen between two passes of
            its turn without being searched. At 4, blur mode ran 0.91-1.0x as fast
            as upright only (0.67-0.88x with YuNet in OpenCV: `benchmarks/speed.py
            --upright`).
    """

    backend: str = "yunet"
    score_threshold: float = 0.5
    weak_threshold: float = 0.3
    max_size: int = 640
    nms_threshold: float = 0.3
    every: int = 1
    workers: int = 0
    turns: tuple[int, ...] = TURNS
    turn_every: int = 2

    def __post_init__(self) -> None:
        _check(0.0 < self.score_threshold < 1.0, f"score_threshold must be in (0, 1), got {self.score_threshold}")
        _check(0.0 < self.weak_threshold < 1.0, f"weak_threshold must be in (0, 1), got {self.weak_threshold}")
        _check(self.max_size >= 64, f"max_size must be at least 64, got {self.max_size}")
        _check(0.0 < self.nms_threshold <= 1.0, f"nms_threshold must be in (0, 1], got {self.nms_threshold}")
        _check(
            1 <= self.every <= DETECT_EVERY_MAX,
            f"every must be in [1, {DETECT_EVERY_MAX}], got {self.every} (from 3 on, fast-moving faces went partly "
            "bare on the samples in blur mode, and a held face's stand-in matched the person in gan mode)",
        )
        _check(0 <= self.workers <= 16, f"detector workers must be in [0, 16], got {self.workers}")
        object.__setattr__(self, "turns", tuple(int(a) for a in self.turns))
        _check(
            all(a in (90, 180, 270) for a in self.turns) and len(set(self.turns)) == len(self.turns),
            f"turns must be distinct values of 90, 180 and 270, got {', '.join(map(str, self.turns)) or 'none'}",
        )
        _check(
            1 <= self.turn_every <= 30 and self.turn_every % self.every == 0,
            f"turn_every must be in [1, 30] and a multiple of every ({self.every}), got {self.turn_every}",
        )

    def turn_period(self) -> int:
        """Frames between two passes of the same turn (0 without turns)."""
        return self.turn_every * len(self.turns)

    def turns_at(self, index: int, every_turn: bool = False) -> tuple[int, ...]:
        """The scheduled turns for frame `index`: all of them with `every_turn`, else one
        every `turn_every` frames, in rotation."""
        if not self.turns or every_turn:
            return self.turns
        if index % self.turn_every:
            return ()
        return (self.turns[(index // self.turn_every) % len(self.turns)],)

    def detector_settings(self) -> DetectConfig:
        """The settings a run's detectors are made with: scoring down to the weak threshold."""
        return replace(self, score_threshold=min(self.score_threshold, self.weak_threshold))

    def worker_count(self) -> int:
        """Detector threads: `workers`, or the automatic choice."""
        return self.workers if self.workers else max(1, min(3, (os.cpu_count() or 1) // 4))


HOLD_FRAMES_MAX = 1000


@dataclass(frozen=True)
class TrackConfig:
    """Tracking and the fail-closed rules around it.

    Attributes:
        hold_frames: a track that the detector misses keeps its predicted
            region covered for this many frames.
        lookahead: frames buffered so that a track's first detection also
            covers the frames just before it.
        hold_growth: per missed frame, a predicted box grows by this fraction
            of its size (the face may have moved further than predicted).
        distance_threshold: norfair IoU distance (1 - IoU) above which a
            detection does not match a track.
        smoothing: smooth boxes and landmarks over time (One-Euro filter).
        min_cutoff, beta: One-Euro parameters (in frames): lower min_cutoff
            smooths more when still; higher beta follows fast motion sooner.
        motion: with smoothing, carry each face from frame to frame by the
            image motion of its own pixels (corners followed by optical flow,
            a similarity fitted to them) and let the detection correct that
            slowly; faces whose motion cannot be followed use the One-Euro
            filter. None: on in gan mode, off for the filters (`PipelineConfig`
            decides; a tracker given frames alone treats None as on). It costs
            ~0.3 ms per face per frame on the detection thread: blur mode at
            720p on 2 cores ran at 0.49x the floor with it, 0.59x without.
        motion_gain: the share of the gap between the motion-carried face and
            the detection closed per frame, in (0, 1]; 1 follows the detector.
            Default 0.1. 0.05 read steadier on the bundled samples (low-pass
            flicker 1.69x / 1.22x -> 1.55x / 1.12x, placement error change p95
            0.63 -> 0.41 px), but on tests/test_motion.py's clip with
            --detect-every 2 its faces drifted far enough from the detections
            to snap (step error 0.16 -> 0.60 px), and a gain that rises with
            the gap snapped on the detector's noise instead: lower it per clip
            (`--motion-gain`), not by default.
    """

    hold_frames: int = 12
    lookahead: int = 8
    hold_growth: float = 0.04
    distance_threshold: float = 0.85
    smoothing: bool = True
    min_cutoff: float = 0.05
    beta: float = 0.02
    motion: bool | None = None
    motion_gain: float = 0.1

    def __post_init__(self) -> None:
        _check(
            0 <= self.hold_frames <= HOLD_FRAMES_MAX,
            f"hold_frames must be in [0, {HOLD_FRAMES_MAX}], got {self.hold_frames}",
        )
        _check(0 <= self.lookahead <= 300, f"lookahead must be in [0, 300], got {self.lookahead}")
        _check(0.0 <= self.hold_growth <= 1.0, f"hold_growth must be in [0, 1], got {self.hold_growth}")
        _check(
            0.0 < self.distance_threshold <= 1.0, f"distance_threshold must be in (0, 1], got {self.distance_threshold}"
        )
        _check(self.min_cutoff > 0 and self.beta >= 0, "min_cutoff must be > 0 and beta >= 0")
        _check(0.0 < self.motion_gain <= 1.0, f"motion_gain must be in (0, 1], got {self.motion_gain}")


REGENERATE_EVERY_MAX = 8


@dataclass(frozen=True)
class CoverConfig:
    """How a face region is covered.

    Attributes:
        mode: blur, pixelate, solid or gan.
        shape: ellipse or box.
        mask_scale: the covered region is the face box scaled by this factor.
        fallback: filter used where the generator cannot help (tiny faces,
            errors): blur, pixelate or solid.
        seed: run seed; with the track id it fixes each fake identity.
        z_mode: per-track (one identity per track) or per-frame (DeepPrivacy).
        checkpoint: generator checkpoint path; None uses the bundled one.
        device: torch device for the generator.
        min_gan_size: faces smaller than this (box side, pixels) get the fallback.
        temporal_blend: gan mode, per-track z: weight of the new generated face
            against the track's running one while the head holds its pose (1 = no
            blending; the weight rises to 1 as the pose changes, `anonymize.temporal`).
            Default 0.1: on the bundled samples it cut the low-pass flicker from
            2.08x / 1.36x of the original (0.5, the earlier default) to 1.86x /
            1.25x, where a track's face held perfectly still read 1.75x / 1.22x
            (tenth session; with the eleventh's tracking, 1.69x / 1.22x and 1.62x / 1.20x);
            identity, privacy and realism unchanged (benchmarks/RESULTS.md).
        regenerate_every: gan mode, per-track z, with the temporal blend on: a
            track's face is generated anew every Nth frame only, and whenever its
            pose moves, the identity guard checks it or it has no running face; in
            the frames between, its running (blended) face is pasted where the
            track is now. A face the frame edge cuts is generated in every frame
            (held, one such face leaked: benchmarks/leaks.py, people.mp4, seed 4).
            Default 4: at 720p on 2 cores gan mode ran 19.9 -> 22.4 frames/s
            (generator 24 -> 10 ms a frame), the samples' low-pass flicker 1.69x /
            1.22x against 1.72x / 1.23x at 1 (every face in every frame), and
            leaks.py finds no leak frame at six seeds.
        precision: generator arithmetic on the CPU: "auto" (bfloat16 where the
            CPU computes it natively, AVX512-BF16 or AMX; float32 elsewhere),
            "fp32" or "bf16". CUDA always uses float16 autocast.
        identity_guard: gan mode, one z per track: each track's generated face
            is compared with the original face (SFace) in its first frame, again
            every GUARD_RECHECK frames and as its cover leaves the frame; at a
            cosine of GUARD_COSINE or more the track gets another z (up to
            GUARD_REDRAWS times), so no fake face passes for the real person.
        face_workers: gan mode: threads that make the crops and paste-back
            warps of a frame's faces in parallel; 0 picks a quarter of the
            cores, at most 4 (1, serial, below 8 cores). Same output either way.
        donor_context: gan mode, a donor generator: the donor face is shown to the
            generator inside its face region grown by this factor about its
            landmarks (1-4), and around that a smooth fill of the crop's own context
            instead of the donor's hair and background, which the generator copies
            into the ring around the face (crescents, a bright hood around a dark
            face; `anonymize.align.in_context`). 0: the donor as drawn. Default
            None: the checkpoint's (`GeneratorConfig.donor_context`; 0 in the
            bundled one, trained on donors as drawn). At 1.5 with it every
            gan_quality goal was met and leaks.py found no leak frame at six seeds
            (1 with 0), but stress.py found 26 leak frames in 9 of its 48 gan runs
            (0 with 0): generated faces that SFace, aligned at their own landmarks,
            took for the person (mirror, occluded, many): train with such donors
            (`vidanon train --donor-context`) rather than switch them on here.
        donor_detail: gan mode, a donor generator: inside the donor's region
            (`donor_reach`), the detail finer than a Gaussian of this sigma (pixels of a
            64 px crop) is the donor's own, the coarser bands (colour, light) the
            generator's (`anonymize.align.with_donor_detail`); 0: the generator's output
            as it is. The generator draws the donor's face soft and at low contrast, a
            ghost in dark scenes. Each face gets it scaled by
            `anonymize.align.detail_gain`: in full where the original is in focus and at
            least as large in the frame as in the crop, none where it is blurred or under
            27 px (ramps between). Ungated (twentieth session) stress.py found 2 leak
            frames (small, a 14 px face at 0.39; blur_drop, a sharp fake on a blurred
            face at 0.36-0.37): faces that SFace, aligned where YuNet finds them, took
            for the person. Default 24 with `donor_reach` 3 (2026-12-08; 16 for a day of
            trials, 5 over the face alone before): gan_quality.py --seeds 6 read
            diversity 96.0 | 95.3 | 94.8% at 16 and 96.7 | 96.0 | 95.0% at 24 (held-out |
            photos | lying), 94.6 | 94.3% (photos | lying) at 32.
        donor_reach: gan mode, with `donor_detail`: the donor's detail is taken inside its
            face region grown by this factor about its landmarks (1-4; 1.1: the face
            alone; 3: the whole replaced region, the donor's hair and background with
            it, where its crop shows the teacher's draw: `DonorFaces.drawn`). Outside
            the face the generator can only guess the person's hair and surroundings
            from the context, the same guess for every z, and SFace read two z on one
            face as one person in 10% of pairs (gan_quality.py --seeds 6, photos); the
            donor's own structure there makes each z another head: 4.0% (default 3
            with donor_detail 24, the identity guard reading shifted alignments too;
            the weights README, twenty-fourth and twenty-fifth sessions).
        ring: gan mode: the outer share of each generated region's radius (0-0.5) that is
            blended, towards its edge, into the frame's own surroundings mirrored inward
            across the edge (`anonymize.ring`: never a face's pixels, never inside the crop
            SFace reads, none on faces under 32 px); 0: the generator's output up to the
            edge, where its soft guess of hair and background meets the real ones as a disc
            pasted on the head. Default 0.25: gan_quality's figures as with 0 (seeds 1 and
            11), the seam at the region's edge 6.0 -> 4.4 Lab on photos, no leak frame in
            stress.py and leaks.py (the weights README, twenty-third session).
        device_paste: gan mode: resample and blend the generated faces into
            the frame on the generator's device (`anonymize.devpaste`) instead
            of with OpenCV on the host; None: on for a CUDA device. The same
            pixels to within interpolation rounding.
    """

    mode: str = "blur"
    shape: str = "ellipse"
    mask_scale: float = 1.3
    fallback: str = "blur"
    seed: int = 0
    z_mode: str = "per-track"
    checkpoint: str | None = None
    device: str = "cpu"
    min_gan_size: int = 12
    temporal_blend: float = 0.1
    regenerate_every: int = 4
    precision: str = "auto"
    identity_guard: bool = True
    face_workers: int = 0
    device_paste: bool | None = None
    donor_context: float | None = None
    donor_detail: float = 24.0
    donor_reach: float = 3.0
    ring: float = 0.25

    def __post_init__(self) -> None:
        _check(self.mode in COVER_MODES, f"mode must be one of {', '.join(COVER_MODES)}, got {self.mode!r}")
        _check(self.shape in MASK_SHAPES, f"shape must be one of {', '.join(MASK_SHAPES)}, got {self.shape!r}")
        _check(1.0 <= self.mask_scale <= 4.0, f"mask_scale must be in [1, 4], got {self.mask_scale}")
        _check(
            self.fallback in COVER_MODES[:3], f"fallback must be one of blur, pixelate, solid, got {self.fallback!r}"
        )
        _check(self.z_mode in Z_MODES, f"z_mode must be one of {', '.join(Z_MODES)}, got {self.z_mode!r}")
        _check(self.min_gan_size >= 1, f"min_gan_size must be at least 1, got {self.min_gan_size}")
        _check(0.0 < self.temporal_blend <= 1.0, f"temporal_blend must be in (0, 1], got {self.temporal_blend}")
        _check(
            1 <= self.regenerate_every <= REGENERATE_EVERY_MAX,
            f"regenerate_every must be in [1, {REGENERATE_EVERY_MAX}], got {self.regenerate_every}",
        )
        _check(
            self.precision in PRECISIONS, f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}"
        )
        _check(0.0 <= self.ring <= 0.5, f"ring must be in [0, 0.5], got {self.ring}")
        _check(0 <= self.face_workers <= 32, f"face_workers must be in [0, 32], got {self.face_workers}")
        _check(
            self.donor_context is None or self.donor_context == 0 or 1.0 <= self.donor_context <= 4.0,
            f"donor_context must be 0 or in [1, 4], got {self.donor_context}",
        )
        _check(0.0 <= self.donor_detail <= 32.0, f"donor_detail must be in [0, 32], got {self.donor_detail}")
        _check(1.0 <= self.donor_reach <= 4.0, f"donor_reach must be in [1, 4], got {self.donor_reach}")
        _check(
            re.fullmatch(r"cpu|cuda(:\d+)?", self.device) is not None,
            f"device must be cpu, cuda or cuda:N, got {self.device!r}",
        )
        # (run seed, track id) seeds a 64-bit generator: a larger seed would repeat a smaller one
        _check(-(2**63) <= self.seed < 2**63, f"seed must be in [-2^63, 2^63), got {self.seed}")


@dataclass(frozen=True)
class EncodeConfig:
    """Output encoding.

    Attributes:
        codec: video encoder name (libx264 by default).
        crf: constant rate factor for x264/x265.
        preset: encoder speed preset (x264 names; mapped to p1-p7 for NVENC).
        keep_metadata: keep location/creation metadata (stripped by default).
        threads: x264/x265 threads; 0 picks half the cores, at least 2 and at
            most 8 (detection and covering run beside the encoder). The output
            bytes depend on this count, so pin it for byte-identical files
            across machines.
    """

    codec: str = "libx264"
    crf: int = 18
    preset: str = "veryfast"
    keep_metadata: bool = False
    threads: int = 0

    def __post_init__(self) -> None:
        _check(0 <= self.crf <= 51, f"crf must be in [0, 51], got {self.crf}")
        _check(0 <= self.threads <= 64, f"encoder threads must be in [0, 64], got {self.threads}")
        if self.codec in ("libx264", "libx265") or self.codec.endswith("_nvenc"):
            _check(
                self.preset in X264_PRESETS,
                f"preset must be one of {', '.join(X264_PRESETS)} for {self.codec}, got {self.preset!r}",
            )

    def thread_count(self) -> int:
        """The encoder thread count this config asks for (`threads`, or the automatic choice)."""
        if self.threads:
            return self.threads
        return min(8, max(2, (os.cpu_count() or 2) // 2))


@dataclass(frozen=True)
class PipelineConfig:
    """Everything one run needs."""

    detect: DetectConfig = field(default_factory=DetectConfig)
    track: TrackConfig = field(default_factory=TrackConfig)
    cover: CoverConfig = field(default_factory=CoverConfig)
    encode: EncodeConfig = field(default_factory=EncodeConfig)
    strict: bool = False
    queue_size: int = 8

    def __post_init__(self) -> None:
        _check(1 <= self.queue_size <= 256, f"queue_size must be in [1, 256], got {self.queue_size}")
        if self.track.motion is None:  # steadiness matters for generated faces, a blur hardly shows it
            object.__setattr__(self, "track", replace(self.track, motion=self.cover.mode == "gan"))

    def tracking(self) -> TrackConfig:
        """The tracking settings a run uses.

        Detecting every Nth frame only, a face goes unseen for N - 1 frames without
        being missed, so the hold is N - 1 frames longer than `track.hold_frames` (a
        face is still covered when the detector next looks at it) and the lookahead is
        at least N frames (a face that appears in a skipped frame is covered from there
        once it is detected, and the skipped frames are placed between the detections
        on either side). The lookahead is also at least the frames between two passes
        of one turn (`DetectConfig.turn_period`): a turned face is covered from where it
        entered. Fail closed: a hold or lookahead shorter than the gap between
        detections would leave faces bare.
        """
        gap = self.detect.every - 1
        lookahead = max(self.track.lookahead, gap + 1 if gap else 0, self.detect.turn_period())
        if gap == 0 and lookahead == self.track.lookahead:
            return self.track
        return replace(self.track, hold_frames=min(HOLD_FRAMES_MAX, self.track.hold_frames + gap), lookahead=lookahead)
