"""The YuNet detector's two runtimes: onnxruntime (the default) and OpenCV, on real photos and clips."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from conftest import decode_rgb

from vidanon.config import DetectConfig
from vidanon.detect import make_detector
from vidanon.detect.turn import turn
from vidanon.detect.yunet import YUNET_FILE, YuNetDetector, float_model, packaged_model
from vidanon.synth import photo

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")


def _frames(people_clip) -> list[np.ndarray]:
    """Photos at odd sizes (not multiples of YuNet's 32-pixel padding), shrunk, cropped to a part
    face, turned, over the detection size, plus the frames of a clip with audio."""
    out = []
    for name in ("faceapi-sample1.jpg", "faceapi-sample3.jpg", "faceapi-sample5.jpg"):
        img = photo(name)
        out += [img, turn(img, 90), img[::3, ::3].copy(), img[:301, :517].copy()]
        out.append(cv2.resize(img, (1283, 721)))
    return out + decode_rgb(people_clip)[::4] + [np.zeros((90, 70, 3), np.uint8)]


@pytest.mark.parametrize("threshold, nms", [(0.5, 0.3), (0.3, 0.5)])
def test_runtimes_find_the_same_faces(people_clip, threshold, nms):
    cfg = DetectConfig(score_threshold=threshold, nms_threshold=nms)
    fast = YuNetDetector(cfg)
    slow = YuNetDetector(DetectConfig(backend="yunet-opencv", score_threshold=threshold, nms_threshold=nms))
    assert (fast.runtime, slow.runtime) == ("onnxruntime", "opencv")
    faces = 0
    for rgb in _frames(people_clip):
        a, b = fast.detect(rgb), slow.detect(rgb)
        assert len(a) == len(b), rgb.shape
        faces += len(a)
        if len(a):  # same rows in the same order (non-maximum suppression's, by score)
            np.testing.assert_allclose(a.xyxy, b.xyxy, atol=0.01)
            np.testing.assert_allclose(a.landmarks, b.landmarks, atol=0.01)
            np.testing.assert_allclose(a.score, b.score, atol=1e-4)
            assert (a.score >= threshold).all()
    assert faces > 60


def test_float_model_has_no_quantized_weights_and_takes_any_size():
    model = onnx.load_from_string(float_model(str(packaged_model(YUNET_FILE))))
    assert "DequantizeLinear" not in {n.op_type for n in model.graph.node}
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param for d in dims] == ["batch", "", "height", "width"] and dims[1].dim_value == 3
    assert [i.name for i in model.graph.input] == ["input"]


def test_runtime_by_name_and_without_onnxruntime(monkeypatch):
    assert make_detector(DetectConfig()).runtime == "onnxruntime"
    assert make_detector(DetectConfig(backend="yunet-opencv")).runtime == "opencv"
    with pytest.raises(ValueError, match="unknown detector 'centerface'; valid names: yunet, yunet-opencv"):
        make_detector(DetectConfig(backend="centerface"))
    # where onnxruntime is missing (the lent GPU machine), "yunet" runs in OpenCV and finds the faces
    monkeypatch.setattr("vidanon.detect.yunet.has_onnxruntime", lambda: False)
    det = make_detector(DetectConfig())
    assert det.runtime == "opencv" and len(det.detect(photo("faceapi-sample1.jpg"))) >= 3
