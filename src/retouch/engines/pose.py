"""Body landmarks of the most prominent person in a photo: MediaPipe's pose models under LiteRT.

The two models ship inside Retouch (``engines/models/pose/``, Apache-2.0, taken from the PyPI
wheel ``mediapipe==0.10.21``); the ``mediapipe`` package itself is not used (it pins numpy<2
and a second OpenCV wheel). The decoding follows MediaPipe's CPU graphs
(``pose_detection_cpu.pbtxt``, ``pose_detection_to_roi.pbtxt``,
``pose_landmark_by_roi_cpu.pbtxt``), because the landmark model only works on the crop those
graphs make:

1. the detector sees the image letterboxed (zero padding) into 224x224, values in [-1, 1]; its
   2254 boxes are decoded against fixed-size SSD anchors (strides 8/16/32/32/32, two per cell)
   and merged by weighted non-maximum suppression; the best detection wins;
2. its keypoints 0 (mid-hip) and 1 (a point past the head) give a square crop centred on the
   hips, ``2 * |kp1 - kp0| * 1.25`` on a side, rotated so the body points up, taken with
   replicated border pixels and resized to 256x256 in [0, 1];
3. the landmark model's 33 points (x, y in crop pixels, visibility and presence logits) are
   refined on its 64x64 heatmaps (a 7x7 confidence-weighted mean) and projected back into the
   image. Points may lie outside the image (the hips of a head-and-shoulders portrait): their
   visibility says how much to trust them.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from importlib import resources
from typing import Protocol

import cv2
import numpy as np

# MediaPipe's 33 pose landmarks (BlazePose topology); "left" is the person's left.
NOSE = 0
LEFT_EYE, RIGHT_EYE = 2, 5
LEFT_EAR, RIGHT_EAR = 7, 8
MOUTH_LEFT, MOUTH_RIGHT = 9, 10
LEFT_SHOULDER, RIGHT_SHOULDER = 11, 12
LEFT_ELBOW, RIGHT_ELBOW = 13, 14
LEFT_WRIST, RIGHT_WRIST = 15, 16
LEFT_HAND = (17, 19, 21)  # pinky, index, thumb
RIGHT_HAND = (18, 20, 22)
LEFT_HIP, RIGHT_HIP = 23, 24
LEFT_KNEE, RIGHT_KNEE = 25, 26
LEFT_ANKLE, RIGHT_ANKLE = 27, 28
FACE = tuple(range(11))
NUM_LANDMARKS = 33

_DETECTOR_SIZE = 224
_LANDMARK_SIZE = 256
_MIN_DETECTION_SCORE = 0.5
_NMS_IOU = 0.3
_ROI_SCALE = 1.25
_MIN_PRESENCE = 0.5
_HEATMAP_KERNEL = 7
_MIN_HEATMAP_CONFIDENCE = 0.5


@dataclass(frozen=True)
class Pose:
    """Landmarks in image pixels: ``points`` float32 (33, 2) as (x, y), ``visibility`` float32
    (33,) in [0, 1] (how likely the point is in view and not occluded). Points can lie outside
    the image."""

    points: np.ndarray
    visibility: np.ndarray
    score: float

    def visible(self, index: int, threshold: float = 0.5) -> bool:
        return bool(self.visibility[index] >= threshold)


class PoseEstimator(Protocol):
    def landmarks(self, rgb: np.ndarray) -> Pose | None:
        """The pose of the most prominent person in ``rgb`` (uint8 HxWx3), or None when there
        is nobody. Must be safe to call from several threads at once."""
        ...


def _anchors() -> np.ndarray:
    """(2254, 2) anchor centres in [0, 1], in the order the detector emits its boxes: per
    stride, row by row, cell by cell, then the anchors of that cell (two per layer; the layers
    of one stride share a grid). Fixed anchor size: width and height are 1."""
    strides = [8, 16, 32, 32, 32]
    centres: list[np.ndarray] = []
    for stride in dict.fromkeys(strides):
        cells = int(np.ceil(_DETECTOR_SIZE / stride))
        ys, xs = np.mgrid[0:cells, 0:cells]
        grid = np.stack([(xs + 0.5) / cells, (ys + 0.5) / cells], axis=-1).reshape(-1, 2)
        centres.append(np.repeat(grid, 2 * strides.count(stride), axis=0))
    return np.concatenate(centres).astype(np.float32)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    result: np.ndarray = 1 / (1 + np.exp(-np.clip(x, -80, 80)))
    return result


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one (x0, y0, x1, y1) box with each of ``boxes``."""
    x0 = np.maximum(box[0], boxes[:, 0])
    y0 = np.maximum(box[1], boxes[:, 1])
    x1 = np.minimum(box[2], boxes[:, 2])
    y1 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    result: np.ndarray = inter / np.maximum(area + areas - inter, 1e-9)
    return result


def weighted_nms(boxes: np.ndarray, keypoints: np.ndarray, scores: np.ndarray) -> list[int]:
    """MediaPipe's WEIGHTED non-maximum suppression, in place: the best remaining detection
    absorbs every other one overlapping it by IoU > 0.3, its box and keypoints becoming their
    score-weighted mean. Returns the indices of the kept (merged) detections, best first."""
    order = list(np.argsort(-scores))
    kept: list[int] = []
    while order:
        best = order[0]
        rest = np.array(order)
        overlap = _iou(boxes[best], boxes[rest]) > _NMS_IOU
        group = rest[overlap]
        weights = scores[group][:, None]
        boxes[best] = (boxes[group] * weights).sum(axis=0) / weights.sum()
        keypoints[best] = (keypoints[group] * weights[:, :, None]).sum(axis=0) / weights.sum()
        kept.append(int(best))
        order = [int(i) for i in rest[~overlap]]
    return kept


def _model_bytes(name: str) -> bytes:
    return resources.files("retouch.engines").joinpath("models", "pose", name).read_bytes()


class MediaPipePose:
    """MediaPipe pose detection + full landmark model, run by LiteRT's interpreter.

    A LiteRT interpreter is not thread-safe and is cheap (17-31 ms a run), so each one sits
    behind its own lock rather than being copied per thread.
    """

    def __init__(self, *, threads: int = 1) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self._detector = Interpreter(
            model_content=_model_bytes("pose_detection.tflite"), num_threads=threads
        )
        self._landmarker = Interpreter(
            model_content=_model_bytes("pose_landmark_full.tflite"), num_threads=threads
        )
        for interpreter in (self._detector, self._landmarker):
            interpreter.allocate_tensors()
        self._lock = threading.Lock()
        self._anchors = _anchors()
        outputs = self._detector.get_output_details()
        self._boxes_out = next(o["index"] for o in outputs if o["shape"][-1] == 12)
        self._scores_out = next(o["index"] for o in outputs if o["shape"][-1] == 1)
        by_shape = {
            tuple(o["shape"][1:]): o["index"] for o in self._landmarker.get_output_details()
        }
        self._points_out = by_shape[(195,)]
        self._flag_out = by_shape[(1,)]
        self._heatmap_out = by_shape[(64, 64, 39)]

    def _run(self, interpreter: object, tensor: np.ndarray, outputs: list[int]) -> list[np.ndarray]:
        with self._lock:
            interpreter.set_tensor(interpreter.get_input_details()[0]["index"], tensor)  # type: ignore[attr-defined]
            interpreter.invoke()  # type: ignore[attr-defined]
            return [interpreter.get_tensor(i)[0].copy() for i in outputs]  # type: ignore[attr-defined]

    def detect(self, rgb: np.ndarray) -> tuple[np.ndarray, float] | None:
        """The best person detection's four keypoints in image pixels ((4, 2) float32) and its
        score, or None."""
        h, w = rgb.shape[:2]
        scale = _DETECTOR_SIZE / max(h, w)
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        pad_x, pad_y = (_DETECTOR_SIZE - nw) // 2, (_DETECTOR_SIZE - nh) // 2
        canvas = np.zeros((_DETECTOR_SIZE, _DETECTOR_SIZE, 3), np.float32)
        small = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_AREA)
        canvas[pad_y : pad_y + nh, pad_x : pad_x + nw] = small.astype(np.float32) / 127.5 - 1
        raw, logits = self._run(self._detector, canvas[None], [self._boxes_out, self._scores_out])
        scores = _sigmoid(logits[:, 0])
        keep = scores >= _MIN_DETECTION_SCORE
        if not keep.any():
            return None
        raw, scores, anchors = raw[keep], scores[keep], self._anchors[keep]
        # Offsets in input pixels from the anchor centre (x first); fixed anchors are 1 wide.
        centre = raw[:, 0:2] / _DETECTOR_SIZE + anchors
        size = raw[:, 2:4] / _DETECTOR_SIZE
        boxes = np.concatenate([centre - size / 2, centre + size / 2], axis=1)
        keypoints = raw[:, 4:12].reshape(-1, 4, 2) / _DETECTOR_SIZE + anchors[:, None]
        best = weighted_nms(boxes, keypoints, scores)[0]
        # Undo the letterbox: normalised padded square -> image pixels.
        points = (keypoints[best] * _DETECTOR_SIZE - (pad_x, pad_y)) / scale
        return points.astype(np.float32), float(scores[best])

    def landmarks(self, rgb: np.ndarray) -> Pose | None:
        found = self.detect(rgb)
        if found is None:
            return None
        keypoints, score = found
        hips, beyond_head = keypoints[0], keypoints[1]
        side = 2 * float(np.linalg.norm(beyond_head - hips)) * _ROI_SCALE
        if side < 1:
            return None
        dx, dy = beyond_head - hips
        rotation = np.pi / 2 - np.arctan2(-dy, dx)
        # Crop pixel (u, v) -> image: centre + R(rotation) @ ((u, v) / 256 - 0.5) * side.
        c, s = np.cos(rotation), np.sin(rotation)
        k = side / _LANDMARK_SIZE
        to_image = np.array(
            [
                [c * k, -s * k, hips[0] - (c - s) * side / 2],
                [s * k, c * k, hips[1] - (s + c) * side / 2],
            ],
            np.float32,
        )
        crop = cv2.warpAffine(
            rgb,
            to_image,
            (_LANDMARK_SIZE, _LANDMARK_SIZE),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REPLICATE,
        )
        tensor = (crop.astype(np.float32) / 255)[None]
        raw, flag, heatmap = self._run(
            self._landmarker, tensor, [self._points_out, self._flag_out, self._heatmap_out]
        )
        if float(flag[0]) < _MIN_PRESENCE:
            return None
        values = raw.reshape(39, 5)[:NUM_LANDMARKS]
        xy = refine_from_heatmap(values[:, :2] / _LANDMARK_SIZE, heatmap[:, :, :NUM_LANDMARKS])
        crop_px = xy * _LANDMARK_SIZE
        points = crop_px @ to_image[:, :2].T + to_image[:, 2]
        return Pose(points.astype(np.float32), _sigmoid(values[:, 3]).astype(np.float32), score)


def refine_from_heatmap(xy: np.ndarray, heatmap: np.ndarray) -> np.ndarray:
    """``xy`` (n, 2) normalised to the crop, each moved to the confidence-weighted mean
    position of its heatmap (sigmoid of the logits, HxWxn) in a 7x7 window around it, when the
    window's peak confidence is at least 0.5 (MediaPipe's RefineLandmarksFromHeatmap). Points
    off the heatmap stay as they are."""
    hm_h, hm_w = heatmap.shape[:2]
    out = xy.copy()
    offset = (_HEATMAP_KERNEL - 1) // 2
    for i, (x, y) in enumerate(xy):
        col, row = int(x * hm_w), int(y * hm_h)
        if not (0 <= col < hm_w and 0 <= row < hm_h) or x < 0 or y < 0:
            continue
        r0, r1 = max(0, row - offset), min(hm_h, row + offset + 1)
        c0, c1 = max(0, col - offset), min(hm_w, col + offset + 1)
        confidence = _sigmoid(heatmap[r0:r1, c0:c1, i])
        total = confidence.sum()
        if confidence.max() < _MIN_HEATMAP_CONFIDENCE or total <= 0:
            continue
        rows, cols = np.mgrid[r0:r1, c0:c1]
        out[i] = (
            (cols * confidence).sum() / hm_w / total,
            (rows * confidence).sum() / hm_h / total,
        )
    return out


def create_pose_estimator(*, threads: int = 1) -> PoseEstimator:
    return MediaPipePose(threads=threads)
