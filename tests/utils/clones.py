"""Is the subject of a photo cloned into an outpainted border? The measure and the real photo
(scikit-image's cat) the outpaint tests use."""

from __future__ import annotations

import cv2
import numpy as np

# Patches of skimage.data.chelsea() (top, left, side; px of the original): both eyes and the
# nose, what a viewer spots when it turns up twice.
CHELSEA_FEATURES = {"left eye": (91, 146, 48), "right eye": (113, 293, 48), "nose": (221, 236, 48)}
CHELSEA_SIDES = {"left": 200, "right": 200, "top": 100, "bottom": 0}


def clone_score(out: np.ndarray, border: np.ndarray, patch: tuple[int, int, int]) -> float:
    """Best normalised cross-correlation of the patch's fine detail (grey minus a blur) with any
    window wholly inside ``border``: about 1 for a copy, however it was blended."""
    grey = cv2.cvtColor(out, cv2.COLOR_RGB2GRAY).astype(np.float32)
    detail = grey - cv2.GaussianBlur(grey, (0, 0), 4)
    y, x, side = patch
    y, x = y + CHELSEA_SIDES["top"], x + CHELSEA_SIDES["left"]
    match = cv2.matchTemplate(detail, detail[y : y + side, x : x + side], cv2.TM_CCOEFF_NORMED)
    known = cv2.integral((~border).astype(np.float32))
    overlap = known[side:, side:] - known[:-side, side:] - known[side:, :-side]
    overlap += known[:-side, :-side]
    return float(match[overlap[: match.shape[0], : match.shape[1]] == 0].max())


def chelsea_border(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    top, left = CHELSEA_SIDES["top"], CHELSEA_SIDES["left"]
    border = np.ones((top + h + CHELSEA_SIDES["bottom"], left + w + CHELSEA_SIDES["right"]), bool)
    border[top : top + h, left : left + w] = False
    return border
