"""Engine doubles for tests about geometry and flow rather than model quality."""

from __future__ import annotations

import threading

import numpy as np

from retouch.engines.pose import Pose


class MaskSegmenter:
    """Answers a fixed mask (resized to the input), optionally holding until released, so tests
    can assert exact crop boxes and catch a request while it is running."""

    def __init__(self, mask: np.ndarray, *, hold: threading.Event | None = None) -> None:
        self.mask_template = mask.astype(np.float32)
        self.hold = hold
        self.started = threading.Event()

    def mask(self, rgb: np.ndarray) -> np.ndarray:
        self.started.set()
        if self.hold is not None and not self.hold.wait(timeout=30):
            raise TimeoutError("test never released the segmenter")
        if self.mask_template.shape != rgb.shape[:2]:
            raise ValueError("test mask and image differ in size")
        return self.mask_template


class FixedPose:
    """A pose estimator double: answers the same pose (or nobody) for every image, counting
    its calls."""

    def __init__(self, pose: Pose | None) -> None:
        self.pose = pose
        self.calls = 0

    def landmarks(self, rgb: np.ndarray) -> Pose | None:
        self.calls += 1
        return self.pose
