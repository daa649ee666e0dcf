"""Synthetic people and garments of known geometry, for try-on tests."""

from __future__ import annotations

from typing import NamedTuple

import cv2
import numpy as np

from retouch.engines.pose import NUM_LANDMARKS, Pose

SIZE = (384, 256)  # H, W
SHOULDER, WAIST, HIPS, CROTCH, SOLES = 96, 176, 214, 226, 372
FOLD = (140, 152)  # rows of the darker band across the chest
SKIN, SHIRT, JEANS = (225, 178, 148), (215, 212, 205), (55, 70, 110)


class Scene(NamedTuple):
    rgb: np.ndarray
    mask: np.ndarray  # the whole person
    parts: dict[str, np.ndarray]  # head, neck, torso, arms, legs, feet


def _polygon(points: list[tuple[int, int]]) -> np.ndarray:
    mask = np.zeros(SIZE, np.uint8)
    cv2.fillPoly(mask, [np.array(points, np.int32)], 1)
    return mask.astype(bool)


def _ellipses(*shapes: tuple[tuple[int, int], tuple[int, int]]) -> np.ndarray:
    mask = np.zeros(SIZE, np.uint8)
    for centre, axes in shapes:
        cv2.ellipse(mask, centre, axes, 0, 0, 360, 1, -1)
    return mask.astype(bool)


def person_scene(seed: int = 0) -> Scene:
    rng = np.random.default_rng(seed)
    h, w = SIZE
    t = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    backdrop = np.float32([95, 145, 150]) * (1 - t) + np.float32([55, 95, 100]) * t
    image = backdrop * np.ones((1, w, 1), np.float32)
    image += cv2.GaussianBlur(rng.normal(0, 1, (h, w, 3)).astype(np.float32), (0, 0), 3) * 25
    neck = np.zeros(SIZE, bool)
    neck[70:100, 119:138] = True
    parts = {
        "arms": _polygon([(76, 100), (90, 106), (60, 238), (44, 232)])
        | _polygon([(180, 100), (166, 106), (196, 238), (212, 232)]),
        "torso": _polygon(
            [(84, 96), (172, 96), (178, 104), (166, WAIST), (172, HIPS), (172, CROTCH)]
            + [(84, CROTCH), (84, HIPS), (90, WAIST), (78, 104)]
        ),
        "neck": neck,
        "head": _ellipses(((128, 52), (24, 24))),
        "legs": _polygon([(86, 220), (127, 220), (122, 360), (98, 360)])
        | _polygon([(129, 220), (170, 220), (158, 360), (134, 360)]),
        "feet": _ellipses(((106, 364), (16, 7)), ((150, 364), (16, 7))),
    }
    # Lit from the front: the body's sides fall off a little.
    x = np.linspace(-1, 1, w, dtype=np.float32)[None, :, None]
    light = (0.75 + 0.25 * np.cos(np.clip(x * 2.5, -np.pi / 2, np.pi / 2))) * np.ones((h, 1, 1))
    shirt = np.float32(SHIRT) * light
    shirt[slice(*FOLD)] *= 0.7
    colours = {
        "arms": np.float32(SKIN) * light,
        "torso": shirt,
        "neck": np.float32(SKIN) * light,
        "head": np.float32(SKIN) * light,
        "legs": np.float32(JEANS) * light,
        "feet": np.full((h, w, 3), (35, 30, 28), np.float32),
    }
    for name, part in parts.items():  # later parts overlap earlier ones
        image[part] = colours[name][part]
    image[parts["head"] & (np.arange(h)[:, None] < 40)] = (60, 40, 30)  # hair
    image += rng.normal(0, 3, image.shape).astype(np.float32)
    mask = np.logical_or.reduce(list(parts.values()))
    return Scene(np.clip(image, 0, 255).astype(np.uint8), mask, parts)


# Where a pose model would put the drawn figure's landmarks (x, y): joints inside the drawn
# limbs, face points on the drawn head; "left" is the figure's left, the image's right.
DRAWN_LANDMARKS: dict[int, tuple[float, float]] = {
    0: (128, 56),
    1: (132, 48),
    2: (136, 48),
    3: (140, 48),
    4: (124, 48),
    5: (120, 48),
    6: (116, 48),
    7: (152, 52),
    8: (104, 52),
    9: (134, 66),
    10: (122, 66),
    11: (164, 104),
    12: (92, 104),
    13: (188, 170),
    14: (68, 170),
    15: (204, 232),
    16: (52, 232),
    17: (206, 240),
    18: (50, 240),
    19: (204, 242),
    20: (52, 242),
    21: (200, 238),
    22: (56, 238),
    23: (150, 214),
    24: (106, 214),
    25: (146, 290),
    26: (110, 290),
    27: (146, 352),
    28: (110, 352),
    29: (146, 360),
    30: (110, 360),
    31: (152, 368),
    32: (104, 368),
}


def drawn_pose(dy: float = 0) -> Pose:
    """The drawn figure's pose, moved down by ``dy`` rows, every landmark fully visible."""
    points = np.float32([DRAWN_LANDMARKS[i] for i in range(NUM_LANDMARKS)]) + (0, dy)
    return Pose(points, np.ones(NUM_LANDMARKS, np.float32), 1.0)


GARMENT_SIZE = (300, 260)
GARMENTS: dict[str, tuple[tuple[int, int, int], list[tuple[int, int]]]] = {
    "tshirt": (
        (200, 30, 35),
        [(70, 10), (105, 10), (130, 28), (155, 10), (190, 10), (250, 60), (215, 100)]
        + [(195, 80), (195, 290), (65, 290), (65, 80), (45, 100), (10, 60)],
    ),
    "trousers": (
        (40, 70, 190),
        [(60, 10), (200, 10), (215, 290), (150, 290), (130, 110), (110, 290), (45, 290)],
    ),
    "dress": (
        (40, 160, 60),
        [(95, 10), (165, 10), (175, 90), (160, 130), (215, 290), (45, 290), (100, 130)]
        + [(85, 90)],
    ),
}
MODE_OF = {"tshirt": "upper", "trousers": "lower", "dress": "full"}
# A long-sleeved top, sleeves hanging at about 30 degrees from the body (not in GARMENTS: the
# tests over every garment there expect its own region).
LONG_SLEEVED = (
    (200, 30, 35),
    [(85, 10), (110, 25), (150, 25), (175, 10), (205, 40), (255, 250), (228, 262), (185, 110)]
    + [(185, 290), (75, 290), (75, 110), (32, 262), (5, 250), (55, 40)],
)


def garment_photo(
    name: str, colour: tuple[int, int, int] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The garment flat on white (uint8 RGB), in its own colour or ``colour``, and its true
    mask."""
    own, points = LONG_SLEEVED if name == "long-sleeved" else GARMENTS[name]
    colour = colour or own
    mask = np.zeros(GARMENT_SIZE, np.uint8)
    cv2.fillPoly(mask, [np.array(points, np.int32)], 1)
    image = np.full((*GARMENT_SIZE, 3), 255, np.uint8)
    image[mask > 0] = colour
    return image, mask.astype(bool)


def garment_rgba(name: str, colour: tuple[int, int, int] | None = None) -> np.ndarray:
    image, mask = garment_photo(name, colour)
    return np.dstack([image, mask.astype(np.uint8) * 255])


def wearing(rgb: np.ndarray, name: str, colour: tuple[int, int, int] | None = None) -> np.ndarray:
    """Pixels of the garment's colour (or ``colour``): its hue within 15 degrees, strongly
    saturated (the person's jeans share the trousers' hue but not their saturation)."""
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV_FULL).astype(np.int16)
    colour = colour or (LONG_SLEEVED if name == "long-sleeved" else GARMENTS[name])[0]
    target = cv2.cvtColor(np.uint8([[colour]]), cv2.COLOR_RGB2HSV_FULL)[0, 0]
    hue = np.abs(hsv[..., 0] - int(target[0]))
    hue = np.minimum(hue, 256 - hue)  # hue wraps around at 256 in the _FULL encoding
    return (hue <= 11) & (hsv[..., 1] > 165) & (hsv[..., 2] > 40)


def expected_cover(scene: Scene, name: str) -> np.ndarray:
    """The drawn body parts the garment's mode dresses: the torso from the shoulders to the hips
    (upper), torso and legs from the waist to the ankles (lower) or from the shoulders down."""
    rows = np.arange(SIZE[0])[:, None]
    torso, legs = scene.parts["torso"], scene.parts["legs"]
    ankles = rows < SOLES - round(0.04 * (SOLES - 28))
    if name == "tshirt":
        return torso & (rows < HIPS)
    if name == "trousers":
        return (torso | legs) & (rows >= WAIST) & ankles
    return (torso | legs) & ankles


def untouched_zone(scene: Scene) -> np.ndarray:
    """The backdrop more than 3 px from the person (the segmenter's soft edge may be painted)."""
    near = cv2.dilate(scene.mask.astype(np.uint8), np.ones((7, 7), np.uint8))
    return near == 0


# Real photographs of people that ship in packages, and the regions their landmarks define.
BLUE = (30, 60, 200)  # a garment colour no photo's clothing shares


def astronaut() -> np.ndarray:
    """scikit-image's astronaut (Eileen Collins, NASA, public domain): a head-and-shoulders
    portrait, 512x512, the hips below the frame."""
    from skimage import data

    return np.ascontiguousarray(data.astronaut())


def small_portrait() -> np.ndarray:
    """The astronaut at 160x160: a person the pose model finds, cheap to send and to dress
    (for tests about jobs rather than pictures; the drawn figure is no person to the model)."""
    return np.ascontiguousarray(cv2.resize(astronaut(), (160, 160), interpolation=cv2.INTER_AREA))


def landmark_torso(pose: Pose, shape: tuple[int, ...]) -> np.ndarray:
    """Bool HxW: the quadrilateral shoulders-hips, shrunk by a fifth toward its middle (the
    torso the landmarks define, not its edges), cut off by the frame."""
    corners = pose.points[[11, 12, 24, 23]]
    middle = corners.mean(axis=0)
    inner = middle + 0.8 * (corners - middle)
    mask = np.zeros(shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.rint(inner).astype(np.int32)], 1)
    return mask.astype(bool)


def landmark_face(pose: Pose, shape: tuple[int, ...]) -> np.ndarray:
    """Bool HxW: the box around the face landmarks (nose, eyes, ears, mouth), grown by a fifth
    of its size each way."""
    face = pose.points[:11]
    (x0, y0), (x1, y1) = face.min(axis=0), face.max(axis=0)
    gx, gy = 0.2 * (x1 - x0), 0.2 * (y1 - y0)
    mask = np.zeros(shape[:2], bool)
    mask[max(0, round(y0 - gy)) : round(y1 + gy), max(0, round(x0 - gx)) : round(x1 + gx)] = True
    return mask
