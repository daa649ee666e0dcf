"""Virtual try-on engines (dress a person in a garment) and the registry the app picks one from.

``geometric`` (the default) needs no generative weights: a pose model
(``retouch.engines.pose``) finds the body's landmarks, the garment is warped onto the body
region the mode names and relit with the person's own shading. ``diffusion`` repaints the same
region with a local diffusers inpainting pipeline (see ``retouch.engines.diffusion``).

Body geometry (``body_from_pose``), from the pose's landmarks and the segmenter's silhouette;
rows count down from the image's top, "span" is the distance between the shoulder joints:

* shoulders: the mean row of the two shoulder landmarks, less ``_SHOULDER_LIFT`` spans (the
  landmarks are joints; a garment's shoulder seams lie on top of them);
* hips: the hip landmarks' mean row; when the hips are out of frame or hidden (a
  head-and-shoulders portrait) the model still places them, and the shoulders-to-hips height
  is kept within ``_TORSO`` spans either way. An upper garment ends ``_HEM`` torso heights below
  them; the waist (where a lower garment starts) is ``_WAIST`` torso heights above them and the
  crotch ``_CROTCH`` below;
* ankles: the ankle landmarks' mean row (kept within ``_LEGS`` torso heights below the hips),
  which may lie below the image: the garment is then laid out over the whole region and cut
  off by the frame, rather than squeezed into it;
* per row, the body's columns: an outline interpolated between the landmarks (the torso from
  shoulder width to hip width, below the crotch both legs from hips over knees to ankles)
  intersected with the silhouette (the segmenter's alpha > 0.5, the connected part the torso
  lies in). In the torso it is the silhouette's run around the body's centre line, so arms
  hanging beside it are not torso;
* never painted (``protected``): the face (an ellipse over the face landmarks down to the chin),
  everything above the chin, and the hands (the face's skin colour near visible wrists and
  fingers). Outside the silhouette nothing is painted either.

Body region per mode: ``upper`` shoulders to hips, ``lower`` waist to ankles, ``full`` shoulders
to ankles. No pose found: ``UnknownForeground``, whatever the segmenter sees.
"""

from __future__ import annotations

import colorsys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from retouch.engines import pose as lm
from retouch.engines.base import Segmenter
from retouch.engines.diffusion import DiffusionInpainter
from retouch.engines.pose import Pose, PoseEstimator
from retouch.errors import UnknownForeground

MODES = ("upper", "lower", "full")

# Body proportions (see the module docstring), in shoulder spans and torso heights. A span is
# at least this many eyes-to-mouth heights (4 to 5 on a front-facing adult).
_SPAN_PER_FACE = 3.5
_SHOULDER_LIFT = 0.12
_TORSO = (1.0, 2.0)
_HEM = 0.08
_WAIST = 0.25
_CROTCH = 0.12
_LEGS = (1.2, 2.4)
_ANKLE_HEM = 0.04
# Half widths of the outline: the shoulders' outer edge past the joints, the hips' outer edge
# (at least this share of the shoulder span), a thigh and an ankle, in spans of the joints.
_SHOULDER_HALF = 0.62
_HIP_HALF = (0.85, 0.36)
_THIGH_HALF = 0.55
_THIGH_EXTRA = 0.1  # plus this many shoulder spans: hip joints sit close together
_ANKLE_HALF = 0.3
# The outline is widened by this share before the silhouette narrows it: the landmarks are
# estimates, the silhouette is exact.
_OUTLINE_SLACK = 0.15
# Face: its ellipse's half width per ear-to-ear (or eye-to-eye x 2) distance, and the chin's
# depth below the mouth per eyes-to-mouth distance.
_FACE_HALF_WIDTH = 0.75
_CHIN = 1.0
# Hands: near the wrist and finger landmarks visible at least this much (the finger points,
# knuckles, pushed this many times farther from the wrist; at least this share of the
# shoulder span around them), the pixels within this CIELAB distance of the face's skin,
# weighted per channel.
_HAND_VISIBLE = 0.5
_HAND_REACH = 1.5
_MIN_HAND_RADIUS = 0.1
_SKIN_DISTANCE = 14.0
_SKIN_WEIGHTS = np.array([0.25, 1, 1], np.float32)  # L, a, b (OpenCV's 8-bit CIELAB)
# A garment row wider than this many times the narrowest row below it is a sleeve row: only
# that narrowest width is fitted to the body, so sleeves reach past the torso onto the arms.
# Below the factor, a row is a body part of the garment (a bust over a fitted waist).
_SLEEVE_FLARE = 1.25
# A row wider still, this many times the narrowest below, has sleeves: what sticks out past
# that narrowest width is turned toward the elbows (a bodice over a fitted waist is not).
_SLEEVE = 1.5
# Garment edge feathering (Gaussian sigma) per pixel of the image's long side, with a floor.
_FEATHER = 0.002
_MIN_FEATHER = 0.6
# The person's luminance is compared with its local level (see ``_level``) over this share of
# the trunk's width: folds and shadows up to about half that wide carry over to the garment.
_SHADING_SPAN = 0.4
# The shading factor's range: outside it the person's own clothing edges (a dark belt, a white
# collar) would print onto the garment as black or blown-out bands.
_SHADE_RANGE = (0.35, 1.5)

# A person whose body part the garment goes on is out of the frame (a face close-up and a top,
# a portrait and trousers whose hips are below it): an unchanged photo would be charged.
_OUT_OF_FRAME = "The part of the body this garment goes on is not in the person image"

# Words for the diffusion prompt; the colour is the garment's median colour, named.
_GARMENT_WORDS = {"upper": "top", "lower": "trousers", "full": "dress"}
_NEGATIVE_PROMPT = "text, watermark, logo, blurry, low quality, deformed, extra limbs"


class TryOnEngine(Protocol):
    def find_person(self, person: np.ndarray) -> None:
        """Raises ``UnknownForeground`` when ``person`` (uint8 HxWx3) shows nobody to dress;
        cheap enough to run when a request is submitted."""
        ...

    def dress(self, person: np.ndarray, garment: np.ndarray, *, mode: str, seed: int) -> np.ndarray:
        """``person`` (uint8 HxWx3) wearing ``garment``: uint8 HxWx3 of the person's size.

        ``garment`` is uint8 RGBA, already cut out (its alpha is the garment); ``mode`` is
        ``"upper"``, ``"lower"`` or ``"full"`` (``auto`` is resolved by the caller). Raises
        ``UnknownForeground`` when no person is found. Must be safe to call from several threads
        at once; the same inputs and ``seed`` give the same output.
        """
        ...


@dataclass(frozen=True, eq=False)
class Body:
    """Landmark rows of a figure, its body's columns per row and what must never be painted.

    ``left[y]:right[y]`` are the body's columns in image row ``y`` (both -1 where the row has
    none). Each landmark is a row index, and a region ends one row before its last landmark;
    ``hips`` and ``ankle`` lie below the image when the figure runs off its bottom.
    ``protected`` (bool HxW) is the face, everything above the chin and the hands; ``arms``
    the (shoulder, elbow) points (x, y) of the arm on the image's left, then on its right.
    """

    shoulder: int
    waist: int
    hips: int
    crotch: int
    ankle: int
    left: np.ndarray
    right: np.ndarray
    protected: np.ndarray
    arms: tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]

    def rows(self, mode: str) -> tuple[int, int]:
        """The first row and one past the last that ``mode`` dresses."""
        if mode == "upper":
            return self.shoulder, self.hips
        if mode == "lower":
            return self.waist, self.ankle
        if mode == "full":
            return self.shoulder, self.ankle
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")


def silhouette(alpha: np.ndarray, near: tuple[float, float] | None = None) -> np.ndarray:
    """The connected part of ``alpha > 0.5`` closest to the point ``near`` (x, y), else the
    largest, as bool HxW (other people, props and the segmenter's specks are not the person
    being dressed)."""
    fg = (alpha > 0.5).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
    if count < 2:
        return fg.astype(bool)
    if near is not None:
        ys, xs = np.nonzero(fg)
        d = (xs - near[0]) ** 2 + (ys - near[1]) ** 2
        nearest: np.ndarray = labels == labels[ys[np.argmin(d)], xs[np.argmin(d)]]
        return nearest
    result: np.ndarray = labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return result


def shoulder_span(pose: Pose) -> float:
    """The distance between the shoulder joints, the body's yardstick; at least
    ``_SPAN_PER_FACE`` times the eyes-to-mouth height (seen from the side, the shoulders
    overlap and their distance says nothing about the body's size)."""
    eyes = _mid(pose, lm.LEFT_EYE, lm.RIGHT_EYE)
    mouth = _mid(pose, lm.MOUTH_LEFT, lm.MOUTH_RIGHT)
    face = float(np.linalg.norm(mouth - eyes))
    return max(_span(pose, lm.LEFT_SHOULDER, lm.RIGHT_SHOULDER), _SPAN_PER_FACE * face, 2.0)


def _mid(pose: Pose, a: int, b: int) -> np.ndarray:
    result: np.ndarray = (pose.points[a] + pose.points[b]) / 2
    return result


def _span(pose: Pose, a: int, b: int) -> float:
    return float(np.linalg.norm(pose.points[a] - pose.points[b]))


def body_from_pose(pose: Pose, mask: np.ndarray, rgb: np.ndarray) -> Body:
    """The body geometry of the module docstring for ``pose``, the silhouette ``mask`` (bool
    HxW) and the person image ``rgb`` (for the hands' skin colour)."""
    h, w = mask.shape
    shoulders = _mid(pose, lm.LEFT_SHOULDER, lm.RIGHT_SHOULDER)
    span = shoulder_span(pose)
    hips = _mid(pose, lm.LEFT_HIP, lm.RIGHT_HIP)
    torso = float(np.clip(hips[1] - shoulders[1], _TORSO[0] * span, _TORSO[1] * span))
    hip_y = shoulders[1] + torso
    ankles = _mid(pose, lm.LEFT_ANKLE, lm.RIGHT_ANKLE)
    ankle_y = hip_y + float(np.clip(ankles[1] - hip_y, _LEGS[0] * torso, _LEGS[1] * torso))
    shoulder = round(shoulders[1] - _SHOULDER_LIFT * span)
    crotch = round(hip_y + _CROTCH * torso)
    left, right = np.full(h, -1), np.full(h, -1)
    ys = np.arange(h, dtype=np.float32)

    # The torso: centre line and half width from shoulders to hips.
    t = np.clip((ys - shoulders[1]) / torso, 0, 1)
    centre = shoulders[0] + t * (hips[0] - shoulders[0])
    hip_half = max(_HIP_HALF[0] * _span(pose, lm.LEFT_HIP, lm.RIGHT_HIP), _HIP_HALF[1] * span)
    half = (_SHOULDER_HALF * span * (1 - t) + hip_half * t) * (1 + _OUTLINE_SLACK)
    lo, hi = centre - half, centre + half
    # Below the crotch: both legs, each from hip over knee to ankle.
    legs = ys >= crotch
    if legs.any():
        thigh = _THIGH_HALF * _span(pose, lm.LEFT_HIP, lm.RIGHT_HIP) + _THIGH_EXTRA * span
        edges = []
        for hip_i, knee_i, ankle_i in (
            (lm.LEFT_HIP, lm.LEFT_KNEE, lm.LEFT_ANKLE),
            (lm.RIGHT_HIP, lm.RIGHT_KNEE, lm.RIGHT_ANKLE),
        ):
            path_y = [hip_y, pose.points[knee_i][1], max(ankle_y, pose.points[knee_i][1] + 1)]
            path_x = [pose.points[hip_i][0], pose.points[knee_i][0], pose.points[ankle_i][0]]
            x = np.interp(ys[legs], np.maximum.accumulate(path_y), path_x)
            s = np.clip((ys[legs] - hip_y) / max(ankle_y - hip_y, 1), 0, 1)
            leg_half = (thigh * (1 - s) + _ANKLE_HALF * span * s) * (1 + _OUTLINE_SLACK)
            edges.append((x - leg_half, x + leg_half))
        lo[legs] = np.minimum(edges[0][0], edges[1][0])
        hi[legs] = np.maximum(edges[0][1], edges[1][1])

    ankle = round(ankle_y + _ANKLE_HEM * (ankle_y - hip_y))
    mask = _fill_holes(mask)
    for y in range(max(0, shoulder), min(h, ankle)):
        a, b = max(0, int(lo[y])), min(w, int(np.ceil(hi[y])))
        cols = np.flatnonzero(mask[y, a:b])
        if b <= a or cols.size == 0:
            continue
        start, stop = a + int(cols[0]), a + int(cols[-1]) + 1
        c = int(np.clip(centre[y], 0, w - 1))
        if y < crotch and mask[y, c] and a <= c < b:
            # The run around the centre line: an arm beside the torso is not torso.
            row = mask[y]
            run_lo = c - int(np.argmin(row[c::-1])) + 1 if not row[c::-1].all() else 0
            run_hi = c + int(np.argmin(row[c:])) if not row[c:].all() else w
            start, stop = max(start, run_lo), min(stop, run_hi)
        left[y], right[y] = start, stop
    return Body(
        shoulder=shoulder,
        waist=round(hip_y - _WAIST * torso),
        hips=round(hip_y + _HEM * torso),
        crotch=crotch,
        ankle=ankle,
        left=left,
        right=right,
        protected=protected_region(pose, rgb),
        arms=tuple(  # type: ignore[arg-type]
            sorted(
                (
                    (pose.points[lm.LEFT_SHOULDER], pose.points[lm.LEFT_ELBOW]),
                    (pose.points[lm.RIGHT_SHOULDER], pose.points[lm.RIGHT_ELBOW]),
                ),
                key=lambda arm: float(arm[0][0]),
            )
        ),
    )


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """``mask`` with the background it encloses filled (the segmenter's specks inside the
    body would split a row's run; a gap between an arm and the torso opens onto the
    background and stays)."""
    padded = np.pad(mask, 1).astype(np.uint8)
    flood = padded.copy()
    cv2.floodFill(flood, None, (0, 0), 1)
    result: np.ndarray = (padded | (flood == 0))[1:-1, 1:-1].astype(bool)
    return result


def protected_region(pose: Pose, rgb: np.ndarray) -> np.ndarray:
    """Bool HxW: the face and everything above the chin, and the visible hands: near the hand
    landmarks, the pixels of the face's skin colour (a hand held over the chest protects the
    hand, not a disc of the shirt around it)."""
    h, w = rgb.shape[:2]
    p = pose.points
    eyes = _mid(pose, lm.LEFT_EYE, lm.RIGHT_EYE)
    mouth = _mid(pose, lm.MOUTH_LEFT, lm.MOUTH_RIGHT)
    drop = max(float(mouth[1] - eyes[1]), 1.0)
    face_w = max(_span(pose, lm.LEFT_EAR, lm.RIGHT_EAR), 2 * _span(pose, lm.LEFT_EYE, lm.RIGHT_EYE))
    chin = float(mouth[1] + _CHIN * drop)
    top = float(min(p[list(lm.FACE), 1].min(), eyes[1] - 2 * drop))
    face = np.zeros((h, w), np.uint8)
    centre = (round(float(eyes[0] + mouth[0]) / 2), round((top + chin) / 2))
    axes = (max(1, round(_FACE_HALF_WIDTH * face_w)), max(1, round((chin - top) / 2)))
    cv2.ellipse(face, centre, axes, 0, 0, 360, 1, -1)
    out = face.astype(bool)
    out[: max(0, min(h, round(chin)))] = True
    # The skin colour: the face's pixels between the eyes and the mouth.
    cheeks = np.zeros((h, w), np.uint8)
    cheek_axes = (max(1, round(0.35 * face_w)), max(1, round(drop / 2)))
    cheek_centre = (round(float(eyes[0] + mouth[0]) / 2), round(float(eyes[1] + mouth[1]) / 2))
    cv2.ellipse(cheeks, cheek_centre, cheek_axes, 0, 0, 360, 1, -1)
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB).astype(np.float32)
    skin = lab[cheeks > 0]
    span = shoulder_span(pose)
    for wrist, fingers in ((lm.LEFT_WRIST, lm.LEFT_HAND), (lm.RIGHT_WRIST, lm.RIGHT_HAND)):
        seen = [i for i in fingers if pose.visibility[i] >= _HAND_VISIBLE]
        if pose.visibility[wrist] < _HAND_VISIBLE and not seen:
            continue
        # The hand reaches past the finger landmarks (knuckles): extend them from the wrist.
        root = p[wrist]
        tips = [root + _HAND_REACH * (p[i] - root) for i in seen]
        hand = np.array([root, *tips], np.float32)
        radius = max(
            _MIN_HAND_RADIUS * span, 0.5 * float(np.linalg.norm(hand - root, axis=1).max())
        )
        disc = np.zeros((h, w), np.uint8)
        for a, b in zip(hand[:1].repeat(len(hand), 0), hand, strict=True):
            cv2.line(
                disc,
                tuple(np.rint(a).astype(int)),
                tuple(np.rint(b).astype(int)),
                1,
                max(1, round(radius)),
            )
        cv2.circle(disc, tuple(np.rint(hand.mean(axis=0)).astype(int)), round(radius), 1, -1)
        near = disc > 0
        if skin.size:
            # Lightness counts for little: a hand is often in shadow compared with the face.
            diff = (lab[near] - np.median(skin, axis=0)) * _SKIN_WEIGHTS
            distance = np.linalg.norm(diff, axis=1)
            keep = distance <= _SKIN_DISTANCE
            near[near] = keep
        out |= cv2.dilate(near.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    return out


def find_body(
    segmenter: Segmenter, pose_estimator: PoseEstimator, person: np.ndarray
) -> tuple[np.ndarray, np.ndarray, Body]:
    """The person's alpha (float32 HxW), silhouette (bool HxW) and body geometry.

    Raises ``UnknownForeground`` when the pose model finds nobody.
    """
    pose = pose_estimator.landmarks(person)
    if pose is None:
        raise UnknownForeground("No person could be detected in the person image")
    alpha = segmenter.mask(person)
    chest = (
        _mid(pose, lm.LEFT_SHOULDER, lm.RIGHT_SHOULDER) * 0.7
        + _mid(pose, lm.LEFT_HIP, lm.RIGHT_HIP) * 0.3
    )
    mask = silhouette(alpha, near=(float(chest[0]), float(chest[1])))
    return alpha, mask, body_from_pose(pose, mask, person)


def clothing_region(mask: np.ndarray, body: Body, mode: str) -> np.ndarray:
    """Bool HxW: the silhouette pixels within the body's columns in the rows ``mode`` dresses,
    less the protected parts."""
    start, stop = body.rows(mode)
    start = max(start, 0)
    cols = np.arange(mask.shape[1])
    region = np.zeros_like(mask)
    ys = slice(start, max(start, stop))
    region[ys] = (cols >= body.left[ys, None]) & (cols < body.right[ys, None])
    result: np.ndarray = region & mask & ~body.protected
    return result


def _check(person: np.ndarray, garment: np.ndarray, mode: str) -> None:
    if person.dtype != np.uint8 or person.ndim != 3 or person.shape[2] != 3:
        raise ValueError(f"person must be uint8 HxWx3, got {person.dtype} {person.shape}")
    if garment.dtype != np.uint8 or garment.ndim != 3 or garment.shape[2] != 4:
        raise ValueError(f"garment must be uint8 HxWx4, got {garment.dtype} {garment.shape}")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if not (garment[..., 3] >= 128).any():
        raise ValueError("the garment has no opaque pixels")


class GeometricTryOn:
    """Warps the garment onto the body region and relights it; no generative model.

    The garment's box (alpha >= 128) is scaled to the region's height, top to top and bottom to
    bottom (cut off by the frame when the region runs off the image). Each garment row's width
    (sleeves discounted, see ``_SLEEVE_FLARE``) is then fitted to the body's width in the row it
    lands on, centre on centre: a per-row horizontal stretch, so the garment's own outline
    follows the shoulders, waist and legs. Sleeves (what sticks out past that width) are turned
    about the armhole toward the elbow, at the body's scale. Its alpha is the warped garment
    alpha, feathered, times the person's alpha, less the protected face, chin-up and hands, so
    nothing outside the person changes. Its colour is the garment's times the person's
    luminance over its local level in the painted area (``_level``): folds and shadows of the
    person's clothes shade the new garment; broad lighting gradients are mostly lost. ``seed``
    is unused: the result is deterministic.
    """

    def __init__(self, segmenter: Segmenter, pose: PoseEstimator) -> None:
        self.segmenter = segmenter
        self.pose = pose

    def find_person(self, person: np.ndarray) -> None:
        if self.pose.landmarks(person) is None:
            raise UnknownForeground("No person could be detected in the person image")

    def dress(self, person: np.ndarray, garment: np.ndarray, *, mode: str, seed: int) -> np.ndarray:
        _check(person, garment, mode)
        alpha, mask, body = find_body(self.segmenter, self.pose, person)
        start, stop = body.rows(mode)
        h, w = mask.shape
        painted = _warp(garment, body, start, stop, w, sleeves=mode != "lower")
        if painted is None:
            raise UnknownForeground(_OUT_OF_FRAME)
        (y0, y1, x0, x1), colour, cover = painted
        box = np.s_[y0:y1, x0:x1]
        cover = cv2.GaussianBlur(cover, (0, 0), max(_MIN_FEATHER, _FEATHER * max(h, w)))
        # The silhouette's 1 px rim keeps the edge anti-aliased; the segmenter's faint haze
        # beyond it (in the narrow gap between the legs) is not the person.
        rim = cv2.dilate(mask[box].astype(np.uint8), np.ones((3, 3), np.uint8))
        # Inside the silhouette the person is opaque: the segmenter's soft alpha there (0.8 on
        # a suit it is unsure of) would let the old clothes show through the garment.
        inner = cv2.erode(mask[box].astype(np.uint8), np.ones((5, 5), np.uint8))
        person_alpha = np.maximum(alpha[box], inner)
        cover *= person_alpha * rim * ~body.protected[box]
        trunk = (body.right - body.left)[y0:y1]
        span = _SHADING_SPAN * float(np.median(trunk[trunk > 0]))
        source = person[box].astype(np.float32)
        luminance = source @ np.array([0.299, 0.587, 0.114], np.float32)
        shade = luminance / np.maximum(_level(luminance, cover, span), 1.0)
        shade = np.clip(shade, *_SHADE_RANGE)
        a = cover[..., None]
        blend = source * (1 - a) + np.minimum(colour * shade[..., None], 255) * a
        out = person.copy()
        touched = cover > 0
        out[box][touched] = np.rint(blend[touched]).astype(np.uint8)
        return out


def _garment_rows(alpha: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per garment row: the centre of its extent, the width to fit to the body (sleeves
    discounted), its width and the narrowest width at or below it. Rows without opaque pixels
    (a gap between straps) take their neighbours'."""
    # A garment thinner than the shrink factor may have no pixel left at 128: take its densest.
    solid = alpha >= min(128.0, float(alpha.max()))
    w = solid.shape[1]
    filled = np.flatnonzero(solid.any(axis=1))
    first = np.argmax(solid, axis=1)[filled]
    stop = w - np.argmax(solid[:, ::-1], axis=1)[filled]
    rows = np.arange(solid.shape[0])
    first, stop = np.interp(rows, filled, first), np.interp(rows, filled, stop)
    width = stop - first
    narrowest_below = np.minimum.accumulate(width[::-1])[::-1]
    fit = np.minimum(width, _SLEEVE_FLARE * narrowest_below)
    return (first + stop) / 2, fit, width, narrowest_below


def _warp(
    garment: np.ndarray, body: Body, start: int, stop: int, width: int, *, sleeves: bool
) -> tuple[tuple[int, int, int, int], np.ndarray, np.ndarray] | None:
    """The garment warped onto rows ``start:stop`` (either may lie outside the image, whose
    rows alone are drawn): the box ``(y0, y1, x0, x1)`` it may cover, its straight colour
    (float32 (y1-y0)x(x1-x0)x3) and alpha (float32, 0..1) there; None when the body has no
    columns there. With ``sleeves``, the garment's parts wider than its fitted body width are
    turned toward the elbows (``_sleeve``); without, they are stretched with their row."""
    h = len(body.left)
    y0, y1 = max(start, 0), min(stop, h)
    if y1 <= y0:
        return None
    ys = np.arange(y0, y1)
    left, right = body.left[ys], body.right[ys]
    if not (left >= 0).any():
        return None
    solid = np.argwhere(garment[..., 3] >= 128)
    (g0, f0), (g1, f1) = solid.min(axis=0), solid.max(axis=0) + 1
    crop: np.ndarray = garment[g0:g1, f0:f1].astype(np.float32) / 255
    crop[..., :3] *= crop[..., 3:]  # premultiplied, so transparent colours never bleed in
    # Resampled to about the region's height first: remap alone would alias a large garment.
    factor = (stop - start) / crop.shape[0]
    size = (max(1, round(crop.shape[1] * factor)), stop - start)
    crop = cv2.resize(crop, size, interpolation=cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR)
    gh, gw = crop.shape[:2]
    centre, fit, row_width, narrowest = _garment_rows(crop[..., 3] * 255)
    arms: list[np.ndarray] = []
    if sleeves:
        # In sleeve rows, everything past the narrowest width below is sleeve; that body
        # width is what is fitted there.
        sleeve_row = row_width > _SLEEVE * narrowest
        fit = np.where(sleeve_row, narrowest, fit)
        # A sleeve row's own centre moves where one sleeve ends before the other: its body
        # part is centred like the first row below without sleeves.
        plain = np.flatnonzero(~sleeve_row)
        if plain.size:
            below = plain[np.minimum(np.searchsorted(plain, np.arange(gh)), plain.size - 1)]
            centre = np.where(sleeve_row, centre[below], centre)
        cols = np.arange(gw)[None, :]
        outside = sleeve_row[:, None] & (np.abs(cols + 0.5 - centre[:, None]) > fit[:, None] / 2)
        arms = [crop * (outside & (cols < centre[:, None]))[..., None]]
        arms.append(crop * (outside & (cols >= centre[:, None]))[..., None])
        crop = crop * ~outside[..., None]

    # Output row y shows garment row y - start: the crop has the region's height.
    v = (ys - start).astype(np.float32)
    vi = np.minimum(v.astype(int), gh - 1)
    has = left >= 0
    scale = np.where(has, fit[vi] / np.maximum(right - left, 1), 1.0)  # garment px per body px
    mid = (left + right) / 2
    reach_lo = (mid - centre[vi] / scale)[has]
    reach_hi = (mid + (gw - centre[vi]) / scale)[has]
    x0, x1 = max(0, int(reach_lo.min())), min(width, int(np.ceil(reach_hi.max())) + 1)
    placed = []
    for side, arm in enumerate(arms):
        sleeve = _sleeve(arm, body, start, centre, fit, (left, right, has, scale, mid, y0), side)
        if sleeve is not None:
            placed.append(sleeve)
            x0, x1 = min(x0, max(0, sleeve[0])), max(x1, min(width, sleeve[1]))
    xs = np.arange(x0, x1, dtype=np.float32) + 0.5
    map_x = centre[vi, None] + (xs[None, :] - mid[:, None]) * scale[:, None] - 0.5
    map_x[~has] = -2  # off the garment: transparent
    map_y = np.broadcast_to(v[:, None], map_x.shape)
    warped = cv2.remap(
        crop,
        map_x.astype(np.float32),
        np.ascontiguousarray(map_y, dtype=np.float32),
        cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )
    for _, _, matrix, arm in placed:
        shifted = matrix.copy()
        shifted[:, 2] -= (x0, y0)
        layer = cv2.warpAffine(
            arm, shifted, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0, 0)
        )
        # Under the body part: "over" with the body part on top (premultiplied).
        warped = warped + layer * (1 - warped[..., 3:])
    cover = np.ascontiguousarray(np.clip(warped[..., 3], 0, 1))
    colour = warped[..., :3] / np.maximum(cover, 1e-6)[..., None] * 255
    return (y0, y1, x0, x1), colour, cover


def _sleeve(
    arm: np.ndarray,
    body: Body,
    start: int,
    centre: np.ndarray,
    fit: np.ndarray,
    rows: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, int],
    side: int,
) -> tuple[int, int, np.ndarray, np.ndarray] | None:
    """Where one sleeve goes: the columns it spans, the 2x3 matrix from garment crop pixels to
    image pixels and the sleeve layer itself; None without one (or an arm to put it on).

    The sleeve turns about its armhole (the body part's edge at the sleeve's top row, placed
    where the per-row warp puts that point) from the garment's own direction (armhole to the
    sleeve's farthest pixel) to the arm's (shoulder to elbow), at the body's scale there."""
    left, right, has, scale, mid, y0 = rows
    solid = arm[..., 3] >= 0.5
    if solid.sum() < 4:
        return None
    top = int(np.flatnonzero(solid.any(axis=1))[0])
    y = start + top
    i = y - y0
    if not 0 <= i < len(left) or not has[i]:
        return None
    edge = centre[top] + (fit[top] / 2 if side else -fit[top] / 2)
    anchor_g = np.array([edge, top], np.float32)
    anchor = np.array([mid[i] + (edge - centre[top]) / scale[i], y], np.float32)
    pts = np.argwhere(solid)[:, ::-1].astype(np.float32)
    tip = pts[np.argmax(np.linalg.norm(pts - anchor_g, axis=1))]
    shoulder, elbow = body.arms[side]
    want = np.arctan2(*(elbow - shoulder)[::-1])
    have = np.arctan2(*(tip - anchor_g)[::-1])
    turn = float(want - have)
    k = 1 / float(scale[i])
    c, s = np.cos(turn) * k, np.sin(turn) * k
    matrix = np.array([[c, -s, 0], [s, c, 0]], np.float32)
    matrix[:, 2] = anchor - matrix[:, :2] @ anchor_g
    xs = (pts @ matrix[:, :2].T + matrix[:, 2])[:, 0]
    return int(xs.min()) - 1, int(np.ceil(xs.max())) + 2, matrix, arm


def _level(luminance: np.ndarray, weight: np.ndarray, span: float) -> np.ndarray:
    """The local level of ``luminance`` where ``weight`` > 0: its median over a window ``span``
    px wide, taken at a size where that window is about 25 px and resized back.

    A median rather than a mean: it steps with a step (a shirt tucked into darker trousers, a
    sleeve ending on skin), so those edges do not leave bright and dark halos on the garment,
    while anything narrower than half the window (a fold, a shadow) stands out from it. Pixels
    outside the weight are first filled with the weighted mean around them, so the background
    does not pull the level down at the silhouette's edge.
    """
    h, w = luminance.shape
    f = max(1.0, span / 25)
    small = (max(1, round(w / f)), max(1, round(h / f)))
    lum = cv2.resize(luminance, small, interpolation=cv2.INTER_AREA)
    inside = cv2.resize(weight, small, interpolation=cv2.INTER_AREA)
    k = 2 * max(1, round(span / f / 2)) + 1
    num = cv2.GaussianBlur(lum * inside, (0, 0), k / 2)
    mean = num / np.maximum(cv2.GaussianBlur(inside, (0, 0), k / 2), 1e-6)
    filled = np.where(inside > 0.5, lum, mean)
    level = cv2.medianBlur(np.clip(np.rint(filled), 0, 255).astype(np.uint8), k)
    return cv2.resize(level.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)


def colour_name(rgb: tuple[float, float, float]) -> str:
    """A plain English name for an RGB colour (0..255), from its hue, saturation and value."""
    hue, sat, val = colorsys.rgb_to_hsv(*(c / 255 for c in rgb))
    if val < 0.2:
        return "black"
    if sat < 0.15:
        return "white" if val > 0.8 else "grey"
    degrees = hue * 360
    if degrees < 15 or degrees >= 345:
        return "red"
    if degrees < 40:
        return "brown" if val < 0.6 else "orange"
    for limit, name in (
        (70, "yellow"),
        (165, "green"),
        (200, "teal"),
        (255, "blue"),
        (290, "purple"),
    ):
        if degrees < limit:
            return name
    return "pink"


class DiffusionTryOn:
    """Repaints the body region with a diffusers inpainting pipeline, prompted with the
    garment's colour and kind ("a person wearing a red top"); the garment's own pixels are not
    shown to the model. The region is ``clothing_region`` of the same body geometry as
    ``GeometricTryOn``; pixels outside it are the person's own.
    """

    def __init__(
        self,
        weights_path: Path,
        *,
        segmenter: Segmenter,
        pose: PoseEstimator,
        threads: int,
        steps: int = 25,
    ) -> None:
        self.segmenter = segmenter
        self.pose = pose
        self.inpainter = DiffusionInpainter(weights_path, threads=threads, steps=steps)

    def find_person(self, person: np.ndarray) -> None:
        if self.pose.landmarks(person) is None:
            raise UnknownForeground("No person could be detected in the person image")

    def dress(self, person: np.ndarray, garment: np.ndarray, *, mode: str, seed: int) -> np.ndarray:
        _check(person, garment, mode)
        _, mask, body = find_body(self.segmenter, self.pose, person)
        region = clothing_region(mask, body, mode)
        if not region.any():
            raise UnknownForeground(_OUT_OF_FRAME)
        opaque = garment[..., 3] >= 128
        colour = colour_name(tuple(np.median(garment[opaque][:, :3], axis=0)))
        # ``background`` is the inpainter's prompted path: it repaints wherever the canvas is
        # not opaque and keeps every other pixel.
        canvas = np.dstack([person, np.where(region, 0, 255).astype(np.uint8)])
        return self.inpainter.background(
            canvas,
            scene=None,
            prompt=f"a person wearing a {colour} {_GARMENT_WORDS[mode]}",
            negative_prompt=_NEGATIVE_PROMPT,
            seed=seed,
        )


@dataclass(frozen=True)
class TryOnConfig:
    """Everything a try-on factory may need; each takes what applies to it."""

    segmenter: Segmenter
    pose: PoseEstimator
    threads: int
    weights_path: Path | None = None
    steps: int = 25


def _diffusion(config: TryOnConfig) -> TryOnEngine:
    if config.weights_path is None:
        raise ValueError(
            "the 'diffusion' try-on engine needs a weights path (a local diffusers folder)"
        )
    return DiffusionTryOn(
        config.weights_path,
        segmenter=config.segmenter,
        pose=config.pose,
        threads=config.threads,
        steps=config.steps,
    )


DEFAULT_TRY_ON_ENGINE = "geometric"

TRY_ON_ENGINES: dict[str, Callable[[TryOnConfig], TryOnEngine]] = {
    "geometric": lambda config: GeometricTryOn(config.segmenter, config.pose),
    "diffusion": _diffusion,
}


def create_try_on_engine(
    name: str,
    *,
    segmenter: Segmenter,
    pose: PoseEstimator,
    threads: int,
    weights_path: Path | None = None,
    steps: int = 25,
) -> TryOnEngine:
    """The try-on engine registered under ``name``, loaded. ``segmenter`` and ``pose`` find the
    person (and are shared, not copied); ``threads``, ``weights_path`` and ``steps`` apply to
    ``diffusion`` only: ``geometric`` runs on the calling thread alone."""
    try:
        factory = TRY_ON_ENGINES[name]
    except KeyError:
        raise ValueError(
            f"unknown try-on engine {name!r}; known: {', '.join(sorted(TRY_ON_ENGINES))}"
        ) from None
    return factory(
        TryOnConfig(
            segmenter=segmenter, pose=pose, threads=threads, weights_path=weights_path, steps=steps
        )
    )
