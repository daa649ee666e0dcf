"""Procedural scene backgrounds and the registry the app picks a background generator from.

No weights: each scene is a tabletop product backdrop drawn with numpy and OpenCV, a surface in
the lower part of the frame seen in perspective meeting a softly lit back wall, with the
surface's far edge (the horizon) a little above where the subject stands.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from retouch.engines.base import Backdrop, BackgroundGenerator
from retouch.engines.text_encoder import MiniLmEncoder, TextEncoder
from retouch.ops.cutout import subject_box

SCENES: tuple[str, ...] = ("marble", "wood", "industrial", "linen", "brick", "counter")
STUDIO = "studio"


@dataclass(frozen=True)
class _Stage:
    """Where things are in the frame, in output pixels."""

    h: int
    w: int
    horizon: int  # first row of the surface: its far edge, meeting the back wall
    base: float  # the row the subject stands on, which the camera is focused on
    centre: float  # the subject's centre column
    unit: float  # pixels per pixel of a 1024 px frame, so textures keep their size in frame
    half_width: float = 0.0  # half the subject's width
    light: float = -1.0  # where the key light comes from: -1 the left, 1 the right
    colours: tuple[np.ndarray, ...] = ()  # colours the prompt named, for scenes that take them


def _stage(canvas: np.ndarray, light: float = -1.0, colours: tuple[np.ndarray, ...] = ()) -> _Stage:
    h, w = canvas.shape[:2]
    box = subject_box(canvas[..., 3], threshold=127, min_fraction=0)
    if box is None:
        base, centre, half = 0.8 * h, w / 2, 0.1 * w
    else:
        base, centre = float(box.bottom), (box.left + box.right) / 2
        half = (box.right - box.left) / 2
    # The far edge sits a little above the subject's foot so that it stands on the surface,
    # while the wall and the surface both keep a useful share of the frame.
    horizon = round(float(np.clip(base - 0.2 * h, 0.38 * h, 0.7 * h)))
    return _Stage(h, w, horizon, base, centre, min(h, w) / 1024, half, light, colours)


# --- noise and helpers -----------------------------------------------------------------------
# Colour images are planar, 3xHxW float32 in [0, 1]: blending them with HxW weights then runs
# in long contiguous loops (about 8x faster than HxWx3 against HxWx1 in numpy).


def _noise(rng: np.random.Generator, shape: tuple[int, int], cells: tuple[int, int]) -> np.ndarray:
    """Smooth noise: a ``cells`` (rows, cols) grid of normals upsampled bicubically to ``shape``."""
    grid = rng.standard_normal((max(2, cells[0]), max(2, cells[1])), dtype=np.float32)
    return cv2.resize(grid, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)


def _fbm(
    rng: np.random.Generator,
    shape: tuple[int, int],
    cells: tuple[int, int],
    octaves: int,
    gain: float = 0.5,
) -> np.ndarray:
    """Fractal noise: ``octaves`` of ``_noise``, each twice as fine and ``gain`` times as strong."""
    # Summed where the finest octave has about 4 px per cell and enlarged once: every octave is
    # smooth below that, and enlarging each one to full size would cost most of a scene's time.
    cells = (max(1, cells[0]), max(1, cells[1]))
    top = octaves - 1
    work = (min(shape[0], cells[0] << top + 2), min(shape[1], cells[1] << top + 2))
    out = np.zeros(work, np.float32)
    for i in range(octaves):
        out += gain**i * _noise(rng, work, (cells[0] << i, cells[1] << i))
    if work == shape:
        return out
    return cv2.resize(out, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)


def _grid(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Row and column coordinates, (H, 1) and (1, W), to broadcast."""
    return (
        np.arange(shape[0], dtype=np.float32)[:, None],
        np.arange(shape[1], dtype=np.float32)[None, :],
    )


def _rgb(r: int, g: int, b: int) -> np.ndarray:
    """A colour as a 3x1x1 array, to broadcast against planar images."""
    return np.array([r, g, b], np.float32).reshape(3, 1, 1) / 255


def _fill(shape: tuple[int, int], colour: np.ndarray) -> np.ndarray:
    return np.broadcast_to(colour, (3, *shape)).copy()


def _mix(a: np.ndarray, b: np.ndarray, t: np.ndarray | float) -> np.ndarray:
    """``a`` where ``t`` is 0, ``b`` where it is 1: ``a`` and ``b`` planar images or colours,
    ``t`` HxW."""
    result: np.ndarray = a + (b - a) * t
    return result


def _smoothstep(lo: float, hi: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - lo) / (hi - lo), 0, 1)
    return t * t * (3 - 2 * t)


def _per_plane(image: np.ndarray, op: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """``op`` (an OpenCV call on one HxW plane) applied to an HxW or planar image."""
    if image.ndim == 2:
        return op(image)
    return np.stack([op(plane) for plane in image])


def _blur(image: np.ndarray, sigma: float, size: tuple[int, int] | None = None) -> np.ndarray:
    """``image`` blurred by ``sigma`` of its pixels and resized to ``size`` (W, H).

    A wide blur runs on the image shrunk by up to 4 (to about 2 px of sigma), which a blur that
    soft cannot tell from full size, at a sixteenth of the cost.
    """
    h, w = image.shape[-2:]
    factor = int(np.clip(sigma // 2, 1, 4))

    def op(plane: np.ndarray) -> np.ndarray:
        small = cv2.resize(
            plane, (max(1, w // factor), max(1, h // factor)), interpolation=cv2.INTER_AREA
        )
        small = cv2.GaussianBlur(small, (0, 0), max(sigma / factor, 0.5))
        return cv2.resize(small, size or (w, h), interpolation=cv2.INTER_LINEAR)

    return _per_plane(image, op)


# --- composition: surface in perspective, wall, light ----------------------------------------

# The surface's far and near edges span this many frame widths: the near edge is closer to the
# camera, so the same width of table looks wider there and straight lines converge.
_FAR, _NEAR = 1.3, 2.4
# Surface textures are drawn top-down at this size (rows, cols) in 1024 px frame units: as wide
# as the far edge, and as deep as makes a round fleck look flattened as seen from a little above.
_SURFACE = (640, 1330)


def _surface_shape(stage: _Stage) -> tuple[int, int]:
    return round(_SURFACE[0] * stage.unit), round(_SURFACE[1] * stage.unit)


def _onto_surface(texture: np.ndarray, stage: _Stage) -> np.ndarray:
    """A top-down ``texture`` (far edge first) seen in perspective: rows horizon..H of the frame."""
    rows, w = stage.h - stage.horizon, stage.w
    th, tw = texture.shape[-2:]
    c = w / 2
    src = np.array([[0, 0], [tw, 0], [tw, th], [0, th]], np.float32)
    dst = np.array(
        [
            [c - _FAR * w / 2, 0],
            [c + _FAR * w / 2, 0],
            [c + _NEAR * w / 2, rows],
            [c - _NEAR * w / 2, rows],
        ],
        np.float32,
    )
    matrix = cv2.getPerspectiveTransform(src, dst)
    return _per_plane(
        texture,
        lambda plane: cv2.warpPerspective(
            plane, matrix, (w, rows), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
        ),
    )


def _depth_of_field(surface: np.ndarray, stage: _Stage, sigma: float) -> np.ndarray:
    """The surface sharp at the subject's foot, softer towards the wall and the camera.

    Blurring also hides the aliasing of fine texture squeezed together near the far edge.
    """
    y = np.arange(stage.horizon, stage.h, dtype=np.float32)
    behind = (stage.base - y) / max(stage.base - stage.horizon, 1.0)
    before = 0.5 * (y - stage.base) / max(stage.h - stage.base, 1.0)
    weight = np.clip(np.where(y < stage.base, behind, before), 0, 1) ** 1.2
    return _mix(surface, _blur(surface, sigma), weight[:, None])


def _stack(wall: np.ndarray, surface: np.ndarray, stage: _Stage) -> np.ndarray:
    """The wall's rows above the horizon and the surface below, in one frame."""
    out = np.empty((*wall.shape[:-2], stage.h, stage.w), np.float32)
    out[..., : stage.horizon, :] = wall[..., : stage.horizon, :]
    out[..., stage.horizon :, :] = surface
    return out


def _plaster(stage: _Stage, rng: np.random.Generator, colour: np.ndarray) -> np.ndarray:
    """An out-of-focus painted wall above the horizon: ``colour`` with a faint, large mottle."""
    rows = max(stage.horizon, 1)
    mottle = 1 + 0.02 * _fbm(rng, (max(2, rows // 8), max(2, stage.w // 8)), (3, 4), 3)
    return colour * cv2.resize(mottle, (stage.w, rows), interpolation=cv2.INTER_LINEAR)


def _light(
    stage: _Stage,
    *,
    spot: float,
    vignette: float,
    key: float = 0.06,
    corner: float = 0.12,
    seamless: bool = False,
) -> np.ndarray:
    """Brightness factor HxW: a soft spot on the wall behind the subject and a pool of light
    around its foot, a key light from the left, the wall darkening upwards and the surface
    towards the camera, shade where the surface meets the wall (``corner``), and a vignette.

    ``seamless`` is for a backdrop that curves into the floor: wall and floor lit as one.
    """
    gh = 48
    gw = max(2, round(gh * stage.w / stage.h))
    y = (np.arange(gh, dtype=np.float32)[:, None] + 0.5) / gh
    x = (np.arange(gw, dtype=np.float32)[None, :] + 0.5) / gw
    horizon, base, centre = stage.horizon / stage.h, stage.base / stage.h, stage.centre / stage.w
    side = key * (x - 0.5) * stage.light
    shade = 1 - vignette * np.clip(((x - 0.5) ** 2 + (y - 0.5) ** 2) / 0.5, 0, 1) ** 1.5
    wall_glow = np.exp(-(((x - centre) / 0.35) ** 2 + ((y - horizon + 0.1) / 0.38) ** 2))
    wall = cv2.resize((1 + spot * wall_glow + side) * shade, (stage.w, stage.h))

    rows = (np.arange(stage.h, dtype=np.float32) + 0.5) / stage.h
    upwards = 1 - 0.14 * np.clip((horizon - rows) / max(horizon, 1e-3), 0, 1)
    forwards = 1 - 0.16 * np.clip((rows - base) / max(1 - base, 1e-3), 0, 1)
    if seamless:
        return wall * np.where(rows < horizon, upwards, forwards)[:, None]

    floor_glow = np.exp(-(((x - centre) / 0.3) ** 2 + ((y - base) / 0.16) ** 2))
    floor = cv2.resize((1 + 0.7 * spot * floor_glow + side / 2) * shade, (stage.w, stage.h))
    # The corner's shade is wider on the wall: the surface's edge is lit from above.
    width = np.where(rows < horizon, np.float32(0.04), np.float32(0.01))
    nook = 1 - corner * np.exp(-(((rows - horizon) / width) ** 2))
    on_wall = rows < horizon
    field = np.where(on_wall[:, None], wall, floor)
    return field * (np.where(on_wall, upwards, forwards) * nook)[:, None]


# Brightness above this is compressed towards white instead of clipping (a film-like shoulder),
# so a spot of light on a white wall stays a gradient.
_SHOULDER = 0.88
# The tone curve is a table indexed by brightness in steps of 1/_TONE_STEPS, up to 2: cheaper
# than evaluating it for every pixel, and a step is a quarter of an output level.
_TONE_STEPS = 1024


def _tone_table() -> np.ndarray:
    v = (np.arange(2 * _TONE_STEPS) + 0.5) / _TONE_STEPS
    over = np.maximum(v - _SHOULDER, 0)
    return np.clip((v - over * over / (over + 1 - _SHOULDER)) * 255 + 0.5, 0, 255).astype(np.uint8)


_TONE = _tone_table()
# Film grain, tiled: smooth gradients would otherwise band in the JPEG. Two grey levels are too
# faint for a tile's repeat to show, and drawing a full frame of normals costs ~12 ms.
_GRAIN_TILE = 256
_GRAIN = 0.008


def _finish(image: np.ndarray, light: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Planar ``image`` under ``light``, with grain, through the tone curve: uint8 HxWx3."""
    h, w = light.shape
    grain = rng.standard_normal((_GRAIN_TILE, _GRAIN_TILE), dtype=np.float32)
    reps = (-(-h // _GRAIN_TILE), -(-w // _GRAIN_TILE))
    image *= light * _TONE_STEPS
    image += np.tile(grain * (_GRAIN * _TONE_STEPS), reps)[:h, :w]
    np.clip(image, 0, len(_TONE) - 1, out=image)
    result: np.ndarray = cv2.merge(list(_TONE[image.astype(np.uint16)]))
    return result


# --- the looks -------------------------------------------------------------------------------


def _marble_texture(rng: np.random.Generator, shape: tuple[int, int], unit: float) -> np.ndarray:
    """Polished marble: long flowing veins (a domain-warped sine, with a sharp core and a soft
    halo) in three families at different angles, over soft grey clouds."""
    y, x = _grid(shape)
    carrara = rng.random() < 0.6
    base = _rgb(234, 233, 230) if carrara else _rgb(238, 233, 224)
    colour = _rgb(112, 116, 126) if carrara else _rgb(140, 112, 80)
    clouds = 0.4 * _smoothstep(0.0, 1.4, _fbm(rng, shape, (2, 4), 5))
    veins = np.zeros(shape, np.float32)
    for strength, period, width, angle in (
        (0.95, 300, 1.0, rng.uniform(0.3, 0.9)),
        (0.7, 190, 0.7, rng.uniform(-1.2, -0.5)),
        (0.5, 520, 0.4, rng.uniform(-0.3, 0.3)),
    ):
        flow = _fbm(rng, shape, (2, 4), 5)
        along = (math.cos(angle) / (period * unit), math.sin(angle) / (period * unit))
        phase = x * along[0] + y * along[1] + 0.5 * flow
        # |sin(pi x)| has period 1; reducing the argument first keeps numpy's sin on its fast
        # path (large arguments cost it 20x more).
        distance = np.abs(np.sin(np.pi * (phase - np.round(phase)))) / width
        vein = 0.75 * np.exp(-distance / 0.025) + 0.25 * np.exp(-distance / 0.15)
        # Veins come and go along their length rather than striping the whole slab.
        fade = np.clip(0.5 + 0.6 * _noise(rng, shape, (3, 5)), 0, 1)
        # Veins cross rather than add up: each covers what is under it.
        veins += (1 - veins) * (strength * vein * fade)
    return _mix(_mix(base, _rgb(196, 197, 200), clouds), colour, veins)


def _marble(stage: _Stage, rng: np.random.Generator) -> np.ndarray:
    surface = _onto_surface(_marble_texture(rng, _surface_shape(stage), stage.unit), stage)
    surface = _depth_of_field(surface, stage, 8 * stage.unit)
    wall = _plaster(stage, rng, _rgb(236, 233, 228))
    light = _light(stage, spot=0.12, vignette=0.22)
    return _finish(_stack(wall, surface, stage), light, rng)


# Light and dark (latewood) colours of a few species.
_WOODS = (
    (_rgb(204, 160, 112), _rgb(150, 102, 62)),  # oak
    (_rgb(132, 90, 60), _rgb(74, 46, 30)),  # walnut
    (_rgb(222, 196, 158), _rgb(178, 142, 100)),  # ash
)


def _wood_texture(
    rng: np.random.Generator,
    shape: tuple[int, int],
    unit: float,
    colours: tuple[np.ndarray, np.ndarray],
) -> np.ndarray:
    """Planks running away from the camera, two boards each with staggered end joints.

    Each board is cut from a log whose pith runs below it, a little askew: its face shows the
    log's growth rings where the plane cuts them, straight lines at the sides and "cathedral"
    arches where the rings curve over the pith.
    """
    h, w = shape
    y, x = _grid(shape)
    plank = 150 * unit
    column = np.floor(x / plank)
    index = column.astype(np.int32)
    n = int(index.max()) + 1
    joint = (rng.uniform(0.1, 0.9, n) * h).astype(np.float32)
    board = 2 * index + (y > joint[index])
    pith_x = (rng.uniform(-0.3, 1.3, 2 * n) * plank).astype(np.float32)[board]
    pith_z = (rng.uniform(0.1, 0.6, 2 * n) * plank).astype(np.float32)[board]
    tilt = (rng.uniform(-0.12, 0.12, 2 * n) * plank / h).astype(np.float32)[board]
    local = x - column * plank
    radius = np.sqrt((local - pith_x) ** 2 + (pith_z + tilt * y) ** 2)
    # Rings are not perfect circles: they wander slowly along the grain.
    phase = radius / (7 * unit) + 0.6 * _noise(rng, shape, (6, 14))
    ring = (phase - np.floor(phase)) ** 3
    fibres = _noise(rng, shape, (max(2, h // 90), max(2, w // 2)))
    tone = rng.normal(0, 0.05, 2 * n).astype(np.float32)[board]
    seam = np.minimum(np.minimum(local, plank - local), np.abs(y - joint[index]))
    shade = (1 + tone) * (0.5 + 0.5 * _smoothstep(0.0, 2.5 * unit, seam))
    light, dark = colours
    return _mix(light, dark, np.clip(0.15 + 0.6 * ring + 0.1 * fibres, 0, 1)) * shade


def _wood(stage: _Stage, rng: np.random.Generator) -> np.ndarray:
    colours = _WOODS[rng.integers(len(_WOODS))]
    surface = _onto_surface(_wood_texture(rng, _surface_shape(stage), stage.unit, colours), stage)
    surface = _depth_of_field(surface, stage, 6 * stage.unit)
    wall = _plaster(stage, rng, _rgb(238, 232, 222))
    light = _light(stage, spot=0.14, vignette=0.28, key=0.08)
    return _finish(_stack(wall, surface, stage), light, rng)


def _concrete_texture(rng: np.random.Generator, shape: tuple[int, int], unit: float) -> np.ndarray:
    """Polished concrete: cloudy mottle, darker stains with soft edges, and aggregate specks."""
    h, w = shape
    mottle = _fbm(rng, shape, (3, 6), 7, gain=0.62)
    grit = _fbm(rng, shape, (24, 48), 3, gain=0.7)
    stains = _smoothstep(0.6, 1.4, _fbm(rng, shape, (2, 4), 4))
    grey = 0.66 * (1 + 0.06 * mottle + 0.035 * grit - 0.12 * stains)
    # Specks of aggregate a pixel or two across, some lighter and some darker than the paste.
    fine = _noise(rng, shape, (round(h / (2.2 * unit)), round(w / (2.2 * unit))))
    grey += 0.1 * _smoothstep(1.6, 2.4, fine) - 0.12 * _smoothstep(1.7, 2.6, -fine)
    result: np.ndarray = grey * _rgb(250, 255, 255)
    return result


def _formwork_wall(stage: _Stage, rng: np.random.Generator) -> np.ndarray:
    """A cast concrete wall, slightly out of focus: formwork panels with seams and tie holes."""
    rows = max(stage.horizon, 1)
    # Drawn at half size: the wall is behind the focus, so its detail is soft anyway.
    shape = (max(2, rows // 2), max(2, stage.w // 2))
    y, x = _grid(shape)
    u = stage.unit / 2
    pw, ph = 300 * u, 200 * u
    # Panels are laid from the horizon up and centred on the frame, as a builder would.
    px = x - shape[1] / 2 + pw / 2
    py = shape[0] - y
    col, course = np.floor(px / pw), np.floor(py / ph)
    ids = (course.astype(np.int64) * 1009 + col.astype(np.int64)) % 4096
    tone = rng.normal(0, 0.04, 4096).astype(np.float32)[ids]
    lx, ly = px - col * pw, py - course * ph
    seam = np.minimum(np.minimum(lx, pw - lx), np.minimum(ly, ph - ly))
    hx = np.minimum(np.abs(lx - pw * 0.2), np.abs(lx - pw * 0.8))
    hy = np.minimum(np.minimum(np.abs(ly - ph * 0.2), np.abs(ly - ph * 0.8)), np.abs(ly - ph / 2))
    hole = np.hypot(hx, hy)
    grey = 0.5 * (1 + tone + 0.06 * _fbm(rng, shape, (3, 5), 5))
    grey *= 0.6 + 0.4 * _smoothstep(0.5 * u, 2.5 * u, seam)
    grey *= 0.45 + 0.55 * _smoothstep(5 * u, 7 * u, hole)
    return _blur(grey * _rgb(245, 255, 255), 3 * stage.unit, (stage.w, rows))


def _industrial(stage: _Stage, rng: np.random.Generator) -> np.ndarray:
    surface = _onto_surface(_concrete_texture(rng, _surface_shape(stage), stage.unit), stage)
    surface = _depth_of_field(surface, stage, 4 * stage.unit)
    light = _light(stage, spot=0.3, vignette=0.4, key=0.1, corner=0.2)
    return _finish(_stack(_formwork_wall(stage, rng), surface, stage), light, rng)


def _folds(
    rng: np.random.Generator,
    shape: tuple[int, int],
    cells: tuple[int, int],
    light: tuple[float, float],
    strength: float,
) -> np.ndarray:
    """Shading of soft cloth folds: a smooth height field with a few sharper creases, lit from
    ``light`` (a direction in the image plane: (down, right)). Mean 1, standard deviation
    ``strength``."""
    small = (max(4, shape[0] // 8), max(4, shape[1] // 8))
    crease = np.abs(_noise(rng, small, (cells[0] * 2, cells[1] * 2)))
    dy, dx = np.gradient(_fbm(rng, small, cells, 3) + 0.5 * crease)
    slope = light[0] * dy + light[1] * dx
    slope *= strength / max(float(slope.std()), 1e-6)
    result: np.ndarray = cv2.resize(1 + slope, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)
    return result


_LINENS = (_rgb(204, 190, 168), _rgb(214, 202, 182), _rgb(170, 178, 184), _rgb(198, 172, 160))


def _linen_texture(rng: np.random.Generator, shape: tuple[int, int], unit: float) -> np.ndarray:
    """Plain-weave linen, top-down, as brightness: threads over and under in a checkerboard,
    each of uneven thickness along its length (slubs) and unlike its neighbours, in soft folds."""
    h, w = shape
    pitch = 3 * unit
    y, x = _grid(shape)
    v, u = y / pitch, x / pitch
    row, col = np.floor(v), np.floor(u)
    rows, cols = int(row.max()) + 1, int(col.max()) + 1
    # One noise row per thread, smooth only along it: neighbouring threads are unrelated.
    weft: np.ndarray = rng.standard_normal((rows, max(2, w // 30)), dtype=np.float32)
    weft = cv2.resize(weft, (w, rows), interpolation=cv2.INTER_LINEAR)[row[:, 0].astype(np.int32)]
    warp: np.ndarray = rng.standard_normal((max(2, h // 30), cols), dtype=np.float32)
    warp = cv2.resize(warp, (cols, h), interpolation=cv2.INTER_LINEAR)[:, col[0].astype(np.int32)]
    over = (row + col) % 2 == 0
    crown = np.where(over, np.sin(np.pi * (u - col)), np.sin(np.pi * (v - row)))
    # Slubs show most along the weft, the threads running across the cloth.
    weave = 0.93 + 0.07 * crown + np.where(over, 0.04 * warp, 0.07 * weft)
    result: np.ndarray = weave * _folds(rng, shape, (2, 3), (-0.6, 0.4), 0.05)
    return result


def _linen(stage: _Stage, rng: np.random.Generator) -> np.ndarray:
    """A linen cloth on the table, hanging down the wall behind as a soft, out-of-focus drape;
    the two meet in a gentle curve rather than a corner."""
    colour = _LINENS[rng.integers(len(_LINENS))]
    texture = _linen_texture(rng, _surface_shape(stage), stage.unit)
    surface = _depth_of_field(_onto_surface(texture, stage), stage, 6 * stage.unit)
    rows = max(stage.horizon, 1)
    # Hanging cloth folds vertically: a fold field stretched along the height.
    hanging = _folds(rng, (rows, stage.w), (1, 5), (0.0, 1.0), 0.06)
    cloth = _stack(hanging, surface, stage)
    band = max(2, round(0.05 * stage.h))
    top = max(stage.horizon - band, 0)
    weight = _smoothstep(top, stage.horizon + band, np.arange(top, stage.h, dtype=np.float32))
    # The curve: the hanging part's last row rolls into the table over a band of rows.
    cloth[top:] = hanging[-1] + (cloth[top:] - hanging[-1]) * weight[:, None]
    light = _light(stage, spot=0.14, vignette=0.3, seamless=True)
    return _finish(cloth * colour, light, rng)


@dataclass(frozen=True)
class _BrickWork:
    bricks: np.ndarray  # planar brick colours, 3 x N
    mortar: np.ndarray
    variation: float  # spread of each brick's brightness
    roughness: float  # strength of the mottle and pits on a brick's face


# A red wall, and one whitewashed (the paint evens the bricks out and covers the mortar).
_BRICKWORK = (
    _BrickWork(
        np.array([[150, 66, 46], [172, 88, 60], [126, 56, 40], [160, 104, 76]], np.float32).T / 255,
        _rgb(186, 178, 166),
        0.07,
        1.0,
    ),
    _BrickWork(
        np.array([[228, 224, 216], [236, 232, 224], [214, 206, 196], [220, 214, 206]], np.float32).T
        / 255,
        _rgb(206, 200, 190),
        0.03,
        0.3,
    ),
)
# Bricks and tiles get their random colour from a table indexed by a hash of (course, column).
_TABLE = 4096


def _running_bond(
    shape: tuple[int, int], width: float, height: float, x: np.ndarray, y: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bricks (or tiles) in running bond laid from the bottom row up: each pixel's brick id (an
    index into a ``_TABLE``-long table), distance to its brick's nearest edge, and height above
    the brick's bottom edge."""
    up = shape[0] - y
    course = np.floor(up / height)
    along = x + (course % 2) * width / 2
    col = np.floor(along / width)
    lx, ly = along - col * width, up - course * height
    edge = np.minimum(np.minimum(lx, width - lx), np.minimum(ly, height - ly))
    ids = (course.astype(np.int64) * 1009 + col.astype(np.int64)) % _TABLE
    return ids, edge, ly


def _brick_wall(stage: _Stage, rng: np.random.Generator, work: _BrickWork) -> np.ndarray:
    """A brick wall, red or whitewashed: bricks of varied colour and texture with rough edges,
    recessed mortar joints shaded from the light above, a little out of focus."""
    rows = max(stage.horizon, 1)
    # Drawn at half size: the wall is behind the focus, so its detail is soft anyway.
    shape = (max(2, rows // 2), max(2, stage.w // 2))
    u = stage.unit / 2
    y, x = _grid(shape)
    bw, bh, mortar = 96 * u, 32 * u, 5 * u
    # Rough edges: the joints wander a pixel or two.
    jitter = (shape[0] // 6, shape[1] // 6)
    ids, edge, ly = _running_bond(
        shape,
        bw,
        bh,
        x + 1.2 * u * _noise(rng, shape, jitter),
        y + 1.2 * u * _noise(rng, shape, jitter),
    )
    brick = _smoothstep(mortar / 2 - 0.7 * u, mortar / 2 + 0.7 * u, edge)
    table = work.bricks[:, rng.integers(work.bricks.shape[1], size=_TABLE)]
    table *= 1 + rng.normal(0, work.variation, _TABLE).astype(np.float32)
    grain = 0.08 * work.roughness * _fbm(rng, shape, (shape[0] // 12, shape[1] // 12), 3)
    pits = _smoothstep(1.5, 2.2, _noise(rng, shape, (shape[0] // 2, shape[1] // 2)))
    # Light from above: each brick's top edge catches it, the joint under a brick is shaded.
    bevel = 1 + 0.12 * _smoothstep(bh - mortar - 3 * u, bh - mortar / 2, ly) * brick
    face = table[:, ids] * ((1 + grain - 0.25 * work.roughness * pits) * bevel)
    joint = work.mortar * ((0.75 + 0.25 * _smoothstep(0, bh * 0.3, ly)) * (1 + grain / 20))
    return _blur(_mix(joint, face, brick), 2 * stage.unit, (stage.w, rows))


def _brick(stage: _Stage, rng: np.random.Generator) -> np.ndarray:
    # Colourways are drawn first, so that a seed gives the same one at any canvas size.
    work = _BRICKWORK[int(rng.random() < 0.25)]
    colours = (_rgb(110, 80, 60), _rgb(64, 42, 30))  # dark reclaimed wood
    surface = _onto_surface(_wood_texture(rng, _surface_shape(stage), stage.unit, colours), stage)
    surface = _depth_of_field(surface, stage, 6 * stage.unit)
    light = _light(stage, spot=0.3, vignette=0.4, key=0.1, corner=0.2)
    return _finish(_stack(_brick_wall(stage, rng, work), surface, stage), light, rng)


def _quartz_texture(rng: np.random.Generator, shape: tuple[int, int], unit: float) -> np.ndarray:
    """An engineered-stone worktop: light and even, with fine grey, dark and sandy flecks."""
    h, w = shape
    out = _fill(shape, _rgb(226, 224, 220)) * (1 + 0.025 * _fbm(rng, shape, (3, 6), 4))
    for colour, size, cut in (
        (_rgb(150, 150, 152), 3.0, 1.4),
        (_rgb(70, 68, 66), 2.2, 1.9),
        (_rgb(190, 178, 160), 4.0, 1.6),
    ):
        fleck = _noise(rng, shape, (round(h / (size * unit)), round(w / (size * unit))))
        out = _mix(out, colour, 0.8 * _smoothstep(cut, cut + 0.6, fleck))
    return out


def _tiled_wall(stage: _Stage, rng: np.random.Generator) -> np.ndarray:
    """A white subway-tile backsplash, well out of focus: glazed tiles in running bond, each a
    little convex (lit at the top, shaded at the bottom), in pale grout."""
    rows = max(stage.horizon, 1)
    shape = (max(2, rows // 2), max(2, stage.w // 2))
    u = stage.unit / 2
    y, x = _grid(shape)
    tw, th, grout = 150 * u, 50 * u, 3 * u
    ids, edge, ly = _running_bond(shape, tw, th, x, y)
    tile = _smoothstep(grout / 2, grout / 2 + 1.5 * u, edge)
    tone = 1 + rng.normal(0, 0.015, _TABLE).astype(np.float32)[ids]
    glaze = tone * (0.93 + 0.1 * (ly / th)) * (1 - 0.08 * _smoothstep(3 * u, 0, edge))
    shade = 0.8 + 0.2 * tile * glaze / 1.03
    colour = _mix(_rgb(200, 198, 194), _rgb(242, 242, 240), tile)
    return _blur(colour * shade, 5 * stage.unit, (stage.w, rows))


def _counter(stage: _Stage, rng: np.random.Generator) -> np.ndarray:
    surface = _onto_surface(_quartz_texture(rng, _surface_shape(stage), stage.unit), stage)
    surface = _depth_of_field(surface, stage, 6 * stage.unit)
    wall = _tiled_wall(stage, rng)
    # The polished top mirrors the backsplash faintly, fading with distance from the edge.
    n = min(stage.horizon, surface.shape[1])
    reflection = _blur(wall[:, stage.horizon - n : stage.horizon][:, ::-1], 10 * stage.unit)
    fade = 0.18 * np.exp(-np.arange(n, dtype=np.float32) / (0.05 * stage.h))
    surface[:, :n] = _mix(surface[:, :n], reflection, fade[:, None])
    light = _light(stage, spot=0.14, vignette=0.28, key=0.12)
    return _finish(_stack(wall, surface, stage), light, rng)


# --- more looks: the scene library beyond the spec's six ------------------------------------


def _half(stage: _Stage) -> tuple[tuple[int, int], float]:
    """The wall's shape drawn at half size (it is behind the focus) and the unit there."""
    rows = max(stage.horizon, 1)
    return (max(2, rows // 2), max(2, stage.w // 2)), stage.unit / 2


def _rows01(shape: tuple[int, int]) -> np.ndarray:
    """Row positions in [0, 1] (top to bottom), (H, 1)."""
    return (np.arange(shape[0], dtype=np.float32)[:, None] + 0.5) / shape[0]


def _planar(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    return np.ascontiguousarray(np.broadcast_to(image, (3, *shape)), dtype=np.float32)


def _discs(
    shape: tuple[int, int],
    rng: np.random.Generator,
    count: int,
    radius: tuple[float, float],
    colours: tuple[np.ndarray, ...],
    rows: tuple[float, float] = (0.0, 1.0),
) -> tuple[np.ndarray, np.ndarray]:
    """``count`` filled discs at random: their planar colour and their coverage (HxW), to be
    blended over a picture and then blurred into bokeh."""
    h, w = shape
    colour = np.zeros((h, w, 3), np.float32)
    cover = np.zeros((h, w), np.float32)
    for _ in range(count):
        centre = (int(rng.uniform(0, w)), int(rng.uniform(rows[0] * h, rows[1] * h)))
        r = max(1, int(rng.uniform(*radius)))
        c = colours[rng.integers(len(colours))].reshape(3) * rng.uniform(0.85, 1.1)
        cv2.circle(colour, centre, r, tuple(float(v) for v in c), -1, cv2.LINE_AA)
        cv2.circle(cover, centre, r, float(rng.uniform(0.5, 0.9)), -1, cv2.LINE_AA)
    return np.ascontiguousarray(colour.transpose(2, 0, 1)), cover


def _with_discs(image: np.ndarray, discs: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    colour, cover = discs
    return _mix(image, colour, cover)


def _clouds(rng: np.random.Generator, shape: tuple[int, int], amount: float) -> np.ndarray:
    """Cloud cover in [0, 1]: fractal noise cut at a level, more of it towards the horizon."""
    y = _rows01(shape)
    cells = (3, max(3, round(5 * shape[1] / max(shape[0], 1) / 1.6)))
    cover = _smoothstep(0.7 - amount, 1.9 - amount, _fbm(rng, shape, cells, 4, gain=0.5) + 0.4 * y)
    # Billows: soft, rounded edges rather than a cut-out's.
    return cv2.GaussianBlur(cover, (0, 0), max(2.0, shape[0] / 80))


def _sky(rng: np.random.Generator, shape: tuple[int, int], amount: float) -> np.ndarray:
    """A blue sky, deep at the top and pale at the horizon, with white clouds: sunlit on top
    (where the cloud above is thinner), grey and flat-bottomed below, wispy at their edges."""
    y = _rows01(shape)
    sky = _planar(_mix(_rgb(58, 118, 204), _rgb(196, 220, 240), y**1.4), shape)
    cover = _clouds(rng, shape, amount)
    lift = max(2, shape[0] // 40)
    above = np.empty_like(cover)
    above[lift:], above[:lift] = cover[:-lift], cover[:lift]
    lit = np.clip(0.72 + 2.5 * (cover - above), 0, 1)
    puffs = 1 + 0.04 * _fbm(rng, shape, (6, 12), 3)
    cloud = _mix(_rgb(178, 188, 206), _rgb(255, 255, 255), lit) * puffs
    return _mix(sky, cloud, np.clip(1.15 * cover, 0, 1) ** 1.3)


def _sand_texture(rng: np.random.Generator, shape: tuple[int, int], unit: float) -> np.ndarray:
    """Dry golden sand, top-down: wind ripples, soft dunes and fine grains."""
    h, w = shape
    y, x = _grid(shape)
    phase = y / (34 * unit) + 0.9 * _noise(rng, shape, (4, 8)) + x / (400 * unit)
    ripples = np.sin(2 * np.pi * (phase - np.round(phase)))
    grain = _noise(rng, shape, (round(h / (1.6 * unit)), round(w / (1.6 * unit))))
    dunes = _fbm(rng, shape, (3, 5), 4)
    shade = 1 + 0.05 * dunes + 0.03 * ripples + 0.06 * grain
    return _rgb(228, 198, 148) * shade


def _beach(stage: _Stage, rng: np.random.Generator) -> np.ndarray:
    """Golden sand in focus; behind it, out of focus, the sea with a line of foam at the shore
    and a blue sky with white clouds."""
    shape, _ = _half(stage)
    y = _rows01(shape)
    sea_line = 0.62
    sky = _sky(rng, shape, 0.35)
    t = np.clip((y - sea_line) / (1 - sea_line), 0, 1)
    sea = _planar(_mix(_rgb(30, 96, 156), _rgb(64, 172, 186), t**0.8), shape)
    sea *= 1 + 0.06 * _noise(rng, shape, (max(2, shape[0] // 3), 4))
    foam = _smoothstep(0.9, 0.985, t + 0.025 * _noise(rng, shape, (8, 40)))
    sea = _mix(sea, _rgb(238, 242, 240), 0.85 * foam)
    wall = _blur(np.where(y < sea_line, sky, sea), 3 * stage.unit, (stage.w, max(stage.horizon, 1)))
    surface = _onto_surface(_sand_texture(rng, _surface_shape(stage), stage.unit), stage)
    surface = _depth_of_field(surface, stage, 6 * stage.unit)
    light = _light(stage, spot=0.04, vignette=0.18, key=0.1, corner=0.0)
    return _finish(_stack(wall, surface, stage), light, rng)


def _snow_texture(rng: np.random.Generator, shape: tuple[int, int], unit: float) -> np.ndarray:
    h, w = shape
    drifts = _folds(rng, shape, (3, 5), (-0.5, 0.5), 0.05)
    cold = _smoothstep(0.2, 1.2, _fbm(rng, shape, (3, 6), 4))
    sparkle = _smoothstep(
        2.3, 2.9, _noise(rng, shape, (round(h / (2 * unit)), round(w / (2 * unit))))
    )
    snow = _mix(_rgb(244, 247, 252), _rgb(204, 218, 238), 0.5 * cold) * drifts
    return _mix(snow, _rgb(255, 255, 255), sparkle)


def _pines(
    shape: tuple[int, int], rng: np.random.Generator, line: float, unit: float
) -> np.ndarray:
    """Coverage of a row of fir trees standing on the row ``line`` (a share of the height)."""
    h, w = shape
    cover = np.zeros(shape, np.float32)
    x = -20.0
    while x < w + 20:
        tall = rng.uniform(60, 160) * unit
        half = tall * rng.uniform(0.22, 0.32)
        foot = line * h + rng.uniform(-6, 6) * unit
        points = np.array([[x, foot - tall], [x + half, foot], [x - half, foot]], np.int32)
        cv2.fillPoly(cover, [points], 1.0, cv2.LINE_AA)
        x += rng.uniform(0.6, 1.4) * half
    cover[int(line * h) :] = 1
    return cover


def _snow(stage: _Stage, rng: np.random.Generator) -> np.ndarray:
    """Fresh snow in focus; behind it a blurred line of firs, snowy mountains and a pale sky."""
    shape, u = _half(stage)
    y = _rows01(shape)
    sky = _planar(_mix(_rgb(150, 184, 224), _rgb(226, 234, 244), y**0.8), shape)
    ridge = 0.5 + 0.1 * _fbm(rng, (2, shape[1]), (1, 6), 4)[:1]
    rock = _smoothstep(0.2, 1.0, _fbm(rng, shape, (6, 10), 4))
    mountain = _mix(_rgb(240, 244, 250), _rgb(150, 166, 190), 0.6 * rock)
    wall = _mix(sky, mountain, _smoothstep(-0.01, 0.01, y - ridge))
    wall = _mix(wall, _rgb(44, 64, 62), 0.92 * _pines(shape, rng, 0.97, 2 * u))
    wall = _blur(wall, 5 * stage.unit, (stage.w, max(stage.horizon, 1)))
    surface = _onto_surface(_snow_texture(rng, _surface_shape(stage), stage.unit), stage)
    surface = _depth_of_field(surface, stage, 6 * stage.unit)
    light = _light(stage, spot=0.05, vignette=0.2, key=0.08, corner=0.0)
    return _finish(_stack(wall, surface * 0.92, stage), light, rng)


def _trunks(image: np.ndarray, rng: np.random.Generator, count: int, unit: float) -> np.ndarray:
    h, w = image.shape[-2:]
    out = image
    for _ in range(count):
        x = rng.uniform(0, w)
        width = rng.uniform(12, 60) * unit
        tone = _rgb(54, 42, 34) * rng.uniform(0.7, 1.3)
        xs = np.arange(w, dtype=np.float32)[None, :]
        bark = 0.85 + 0.3 * np.clip(1 - np.abs(xs - x) / (width / 2), 0, 1)
        cover = _smoothstep(width / 2 + unit, width / 2 - unit, np.abs(xs - x))
        out = _mix(out, tone * bark, np.broadcast_to(cover, (h, w)))
    return out


def _moss_texture(rng: np.random.Generator, shape: tuple[int, int], unit: float) -> np.ndarray:
    h, w = shape
    patches = _smoothstep(-1.2, 1.2, _fbm(rng, shape, (3, 6), 5))
    ground = _mix(_rgb(92, 76, 54), _rgb(84, 108, 52), patches)
    litter = _smoothstep(
        1.6, 2.2, _noise(rng, shape, (round(h / (9 * unit)), round(w / (9 * unit))))
    )
    ground = _mix(ground, _rgb(150, 104, 60), 0.7 * litter)
    tufts = _noise(rng, shape, (round(h / (2.5 * unit)), round(w / (2.5 * unit))))
    return ground * (1 + 0.12 * tufts + 0.05 * _fbm(rng, shape, (16, 32), 3))


def _forest(stage: _Stage, rng: np.random.Generator) -> np.ndarray:
    """A mossy forest floor in focus; behind it tree trunks and sunlit leaves, far out of focus."""
    shape, u = _half(stage)
    y = _rows01(shape)
    leaves = _smoothstep(-0.6, 0.8, _fbm(rng, shape, (4, 6), 4))
    wall = _mix(
        _planar(_mix(_rgb(40, 62, 36), _rgb(76, 98, 58), y), shape), _rgb(96, 132, 62), leaves
    )
    wall = _with_discs(
        wall,
        _discs(
            shape, rng, 70, (4 * u, 22 * u), (_rgb(214, 232, 150), _rgb(170, 206, 110)), (0, 0.8)
        ),
    )
    wall = _trunks(wall, rng, 8, 2 * u)
    wall = _blur(wall, 9 * stage.unit, (stage.w, max(stage.horizon, 1)))
    surface = _onto_surface(_moss_texture(rng, _surface_shape(stage), stage.unit), stage)
    surface = _depth_of_field(surface, stage, 6 * stage.unit)
    light = _light(stage, spot=0.2, vignette=0.35, key=0.12, corner=0.0)
    return _finish(_stack(wall, surface, stage), light, rng)


def _paver_texture(rng: np.random.Generator, shape: tuple[int, int], unit: float) -> np.ndarray:
    """Sandstone pavers: slabs of their own tone, worn, with mossy joints."""
    y, x = _grid(shape)
    ids, edge, _ = _running_bond(shape, 420 * unit, 260 * unit, x, y)
    tone = 1 + rng.normal(0, 0.05, _TABLE).astype(np.float32)[ids]
    wear = (
        1
        + 0.06 * _fbm(rng, shape, (4, 8), 5)
        + 0.03 * _noise(rng, shape, (shape[0] // 3, shape[1] // 3))
    )
    slab = _rgb(204, 190, 164) * (tone * wear)
    return _mix(_rgb(140, 136, 110), slab, _smoothstep(0.5 * unit, 3 * unit, edge))


def _garden(stage: _Stage, rng: np.random.Generator) -> np.ndarray:
    """Sandstone pavers in focus; behind them a sunny garden of leaves and flowers, blurred."""
    shape, u = _half(stage)
    y = _rows01(shape)
    leaves = _smoothstep(-0.5, 0.7, _fbm(rng, shape, (5, 8), 4))
    wall = _mix(
        _planar(_mix(_rgb(150, 190, 120), _rgb(60, 96, 46), y), shape), _rgb(40, 70, 36), leaves
    )
    flowers = (_rgb(236, 140, 176), _rgb(246, 214, 96), _rgb(250, 248, 240), _rgb(200, 120, 200))
    wall = _with_discs(wall, _discs(shape, rng, 60, (5 * u, 16 * u), flowers, (0.35, 1.0)))
    wall = _with_discs(
        wall, _discs(shape, rng, 30, (8 * u, 24 * u), (_rgb(236, 246, 200),), (0, 0.5))
    )
    wall = _blur(wall, 8 * stage.unit, (stage.w, max(stage.horizon, 1)))
    surface = _onto_surface(_paver_texture(rng, _surface_shape(stage), stage.unit), stage)
    surface = _depth_of_field(surface, stage, 6 * stage.unit)
    light = _light(stage, spot=0.1, vignette=0.25, key=0.1, corner=0.05)
    return _finish(_stack(wall, surface, stage), light, rng)


def _sky_scene(stage: _Stage, rng: np.random.Generator) -> np.ndarray:
    """A pale stone ledge against open sky with big white clouds."""
    shape, _ = _half(stage)
    wall = _blur(_sky(rng, shape, 0.5), 2 * stage.unit, (stage.w, max(stage.horizon, 1)))
    ledge = _concrete_texture(rng, _surface_shape(stage), stage.unit) * _rgb(330, 320, 305)
    surface = _depth_of_field(_onto_surface(ledge, stage), stage, 4 * stage.unit)
    light = _light(stage, spot=0.03, vignette=0.15, key=0.1, corner=0.25)
    return _finish(_stack(wall, surface, stage), light, rng)


def _city(stage: _Stage, rng: np.random.Generator) -> np.ndarray:
    """A dark stone ledge at dusk; behind it city buildings with lit windows, as bokeh."""
    shape, u = _half(stage)
    h, w = shape
    y = _rows01(shape)
    sky = _mix(
        _mix(_rgb(30, 38, 78), _rgb(128, 96, 128), _smoothstep(0.0, 0.6, y)),
        _rgb(238, 150, 98),
        _smoothstep(0.5, 1.0, y),
    )
    wall = _planar(sky, shape)
    cover = np.zeros(shape, np.float32)
    lit = np.zeros(shape, np.float32)
    x = 0.0
    while x < w:
        bw = rng.uniform(50, 140) * u
        top = h * rng.uniform(0.1, 0.6)
        cv2.rectangle(cover, (int(x), int(top)), (int(x + bw), h), 1.0, -1)
        for wy in np.arange(top + 8 * u, h, 16 * u):
            for wx in np.arange(x + 6 * u, x + bw - 6 * u, 12 * u):
                if rng.random() < 0.45:
                    cv2.rectangle(
                        lit,
                        (int(wx), int(wy)),
                        (int(wx + 5 * u), int(wy + 7 * u)),
                        float(rng.uniform(0.6, 1)),
                        -1,
                    )
        x += bw + rng.uniform(0, 20) * u
    wall = _mix(wall, _rgb(34, 38, 56), cover)
    wall = _mix(wall, _rgb(255, 204, 140), lit * cover)
    wall = _with_discs(
        wall,
        _discs(
            shape,
            rng,
            26,
            (6 * u, 14 * u),
            (_rgb(255, 214, 150), _rgb(255, 120, 90), _rgb(230, 236, 255)),
            (0.75, 1.0),
        ),
    )
    wall = _blur(wall, 9 * stage.unit, (stage.w, max(stage.horizon, 1)))
    stone = _concrete_texture(rng, _surface_shape(stage), stage.unit) * _rgb(120, 122, 136)
    surface = _depth_of_field(_onto_surface(stone, stage), stage, 5 * stage.unit)
    surface = _reflect(surface, wall, stage, 0.25)
    light = _light(stage, spot=0.15, vignette=0.4, key=0.1, corner=0.15)
    return _finish(_stack(wall, surface, stage), light, rng)


def _reflect(surface: np.ndarray, wall: np.ndarray, stage: _Stage, amount: float) -> np.ndarray:
    """A polished surface mirrors the wall faintly, fading with distance from the edge."""
    n = min(stage.horizon, surface.shape[1])
    reflection = _blur(wall[:, stage.horizon - n : stage.horizon][:, ::-1], 10 * stage.unit)
    fade = amount * np.exp(-np.arange(n, dtype=np.float32) / (0.05 * stage.h))
    surface[:, :n] = _mix(surface[:, :n], reflection, fade[:, None])
    return surface


def _window(
    shape: tuple[int, int], stage: _Stage, span: tuple[float, float], rows: tuple[float, float]
) -> np.ndarray:
    """Coverage of a bright window with a cross of glazing bars on the light's side of the wall."""
    h, w = shape
    cover = np.zeros(shape, np.float32)
    lo, hi = span if stage.light < 0 else (1 - span[1], 1 - span[0])
    x0, x1, y0, y1 = int(lo * w), int(hi * w), int(rows[0] * h), int(rows[1] * h)
    cv2.rectangle(cover, (x0, y0), (x1, y1), 1.0, -1)
    bar = max(1, int(0.012 * w))
    cv2.rectangle(cover, ((x0 + x1) // 2 - bar, y0), ((x0 + x1) // 2 + bar, y1), 0.0, -1)
    cv2.rectangle(cover, (x0, (y0 + y1) // 2 - bar), (x1, (y0 + y1) // 2 + bar), 0.0, -1)
    return cover


def _cafe(stage: _Stage, rng: np.random.Generator) -> np.ndarray:
    """A dark wooden café table; behind it a warm, dim room with a window and lamp bokeh."""
    shape, u = _half(stage)
    y = _rows01(shape)
    wall = _planar(_mix(_rgb(70, 50, 38), _rgb(110, 82, 60), y), shape)
    wall = _mix(wall, _rgb(236, 226, 206), 0.9 * _window(shape, stage, (0.0, 0.28), (0.05, 0.9)))
    warm = (_rgb(255, 196, 120), _rgb(255, 170, 90), _rgb(255, 224, 170))
    wall = _with_discs(wall, _discs(shape, rng, 45, (6 * u, 26 * u), warm, (0.05, 0.9)))
    wall = _blur(wall, 6 * stage.unit, (stage.w, max(stage.horizon, 1)))
    colours = _WOODS[1]
    wood = _wood_texture(rng, _surface_shape(stage), stage.unit, colours)
    surface = _depth_of_field(_onto_surface(wood, stage), stage, 6 * stage.unit)
    light = _light(stage, spot=0.2, vignette=0.4, key=0.16, corner=0.15)
    return _finish(_stack(wall, surface, stage), light, rng)


def _living_room(stage: _Stage, rng: np.random.Generator) -> np.ndarray:
    """A light oak coffee table; behind it, blurred, a living room: a window, a sofa, a plant."""
    shape, u = _half(stage)
    h, w = shape
    wall = _planar(_rgb(222, 212, 196), shape) * (1 + 0.02 * _fbm(rng, shape, (3, 4), 3))
    wall = _mix(wall, _rgb(252, 250, 244), _window(shape, stage, (0.04, 0.34), (0.04, 0.8)))
    sofa = np.zeros(shape, np.float32)
    side = (0.45, 1.05) if stage.light < 0 else (-0.05, 0.55)
    cv2.rectangle(sofa, (int(side[0] * w), int(0.6 * h)), (int(side[1] * w), h), 1.0, -1)
    cv2.rectangle(
        sofa,
        (int(side[0] * w) - int(30 * u), int(0.74 * h)),
        (int(side[1] * w) + int(30 * u), h),
        1.0,
        -1,
    )
    wall = _mix(wall, _rgb(128, 138, 140), sofa)
    plant_x = 0.12 if stage.light > 0 else 0.4
    leaves = _discs(
        shape, rng, 40, (8 * u, 20 * u), (_rgb(62, 100, 56), _rgb(86, 128, 70)), (0.35, 0.75)
    )
    spread = np.abs(np.arange(w, dtype=np.float32)[None, :] / w - plant_x) < 0.08
    wall = _mix(wall, leaves[0], leaves[1] * spread)
    wall = _blur(wall, 10 * stage.unit, (stage.w, max(stage.horizon, 1)))
    wood = _wood_texture(rng, _surface_shape(stage), stage.unit, _WOODS[0])
    surface = _depth_of_field(_onto_surface(wood, stage), stage, 6 * stage.unit)
    light = _light(stage, spot=0.12, vignette=0.28, key=0.14)
    return _finish(_stack(wall, surface, stage), light, rng)


def _square_tiles(stage: _Stage, rng: np.random.Generator, colour: np.ndarray) -> np.ndarray:
    """Glazed square tiles in a stack bond with pale grout, a little out of focus."""
    shape, u = _half(stage)
    y, x = _grid(shape)
    size, grout = 110 * u, 3 * u
    ly = (shape[0] - y) % size
    lx = (x - shape[1] / 2) % size
    edge = np.minimum(np.minimum(lx, size - lx), np.minimum(ly, size - ly))
    tile = _smoothstep(grout / 2, grout / 2 + 1.5 * u, edge)
    glaze = (0.94 + 0.08 * ly / size) * (1 + 0.015 * _fbm(rng, shape, (3, 5), 3))
    out = _mix(_rgb(214, 214, 210), colour * glaze, tile)
    return _blur(out, 4 * stage.unit, (stage.w, max(stage.horizon, 1)))


def _bathroom(stage: _Stage, rng: np.random.Generator) -> np.ndarray:
    """A white marble shelf against glazed wall tiles, white or pale sage."""
    colour = (_rgb(238, 240, 238), _rgb(196, 212, 200))[int(rng.random() < 0.5)]
    wall = _square_tiles(stage, rng, colour)
    surface = _onto_surface(_marble_texture(rng, _surface_shape(stage), stage.unit), stage)
    surface = _reflect(_depth_of_field(surface, stage, 6 * stage.unit), wall, stage, 0.15)
    light = _light(stage, spot=0.12, vignette=0.25, key=0.1, corner=0.15)
    return _finish(_stack(wall, surface, stage), light, rng)


def _slate_texture(rng: np.random.Generator, shape: tuple[int, int], unit: float) -> np.ndarray:
    """Natural cleft slate: cool grey, split into thin layers whose edges catch the light as
    wandering lines, with a few rusty patches and a fine, sparkly grain."""
    h, w = shape
    y, x = _grid(shape)
    patches = _smoothstep(0.8, 1.8, _fbm(rng, shape, (3, 6), 5))
    grain = _noise(rng, shape, (round(h / (1.5 * unit)), round(w / (1.5 * unit))))
    # Layer edges: contour lines of a slow field, bright on one side, shaded on the other.
    field = y / (110 * unit) + 0.45 * _fbm(rng, shape, (2, 4), 4) + x / (1400 * unit)
    step = field - np.floor(field)
    edge = _smoothstep(0.0, 0.015, step) * _smoothstep(0.05, 0.015, step)
    terrace = 0.04 * (np.floor(field) % 3)
    stone = _mix(_rgb(92, 96, 102), _rgb(120, 104, 88), 0.45 * patches)
    shade = 1 + 0.05 * _fbm(rng, shape, (3, 6), 5) + 0.07 * grain + terrace + 0.07 * edge
    result: np.ndarray = stone * shade
    return result


def _stone(stage: _Stage, rng: np.random.Generator) -> np.ndarray:
    surface = _onto_surface(_slate_texture(rng, _surface_shape(stage), stage.unit), stage)
    surface = _depth_of_field(surface, stage, 6 * stage.unit)
    wall = _plaster(stage, rng, _rgb(212, 208, 202))
    light = _light(stage, spot=0.2, vignette=0.32, key=0.1, corner=0.15)
    return _finish(_stack(wall, surface, stage), light, rng)


_PAPERS = (_rgb(236, 234, 230), _rgb(216, 219, 224), _rgb(234, 224, 210), _rgb(214, 220, 212))
_GRADIENTS = (
    (_rgb(250, 214, 196), _rgb(232, 170, 176)),
    (_rgb(206, 224, 246), _rgb(184, 172, 222)),
    (_rgb(214, 240, 226), _rgb(120, 186, 180)),
)


def _named(stage: _Stage, fallback: np.ndarray) -> np.ndarray:
    return stage.colours[0] if stage.colours else fallback


def _studio(stage: _Stage, rng: np.random.Generator) -> np.ndarray:
    """A seamless paper sweep: one colour (the prompt's, if it names one), shaped by the light."""
    paper = _fill((stage.h, stage.w), _named(stage, _PAPERS[rng.integers(len(_PAPERS))]))
    light = _light(stage, spot=0.16, vignette=0.3, corner=0.0, seamless=True)
    return _finish(paper, light, rng)


def _paper(stage: _Stage, rng: np.random.Generator) -> np.ndarray:
    """A sweep of heavy textured paper: fibres and a soft cockle, cream unless a colour is named."""
    shape = (stage.h, stage.w)
    u = stage.unit
    fibres = _noise(rng, shape, (round(stage.h / (3 * u)), round(stage.w / (12 * u))))
    tooth = _noise(rng, shape, (round(stage.h / (2 * u)), round(stage.w / (2 * u))))
    cockle = _folds(rng, shape, (2, 3), (-0.5, 0.5), 0.02)
    paper = _named(stage, _rgb(236, 226, 206)) * ((1 + 0.018 * fibres + 0.02 * tooth) * cockle)
    light = _light(stage, spot=0.14, vignette=0.3, corner=0.0, seamless=True)
    return _finish(paper, light, rng)


def _gradient(stage: _Stage, rng: np.random.Generator) -> np.ndarray:
    """A sweep lit in a smooth vertical gradient between two colours (the prompt's if named)."""
    top, bottom = _GRADIENTS[rng.integers(len(_GRADIENTS))]
    if len(stage.colours) >= 2:
        top, bottom = stage.colours[:2]
    elif stage.colours:
        top, bottom = _mix(stage.colours[0], _rgb(255, 255, 255), 0.45), stage.colours[0] * 0.8
    t = _smoothstep(0.0, 1.0, np.arange(stage.h, dtype=np.float32)[:, None] / stage.h)
    paper = _planar(_mix(top, bottom, t), (stage.h, stage.w))
    light = _light(stage, spot=0.12, vignette=0.25, corner=0.0, seamless=True)
    return _finish(paper, light, rng)


def _podium(stage: _Stage, rng: np.random.Generator) -> np.ndarray:
    """A round display podium the subject stands on, on a seamless sweep of the same colour
    family, its side shaded by the key light and its foot casting a soft shadow."""
    colour = _named(stage, _PAPERS[rng.integers(len(_PAPERS))])
    shape = (stage.h, stage.w)
    y, x = _grid(shape)
    rx = float(np.clip(1.4 * stage.half_width, 0.16 * stage.w, 0.42 * stage.w))
    ry = 0.26 * rx
    body = float(np.clip(0.85 * (stage.h - stage.base), 0.04 * stage.h, 0.24 * stage.h))
    cx, top, bottom = stage.centre, stage.base - 0.3 * ry, stage.base - 0.3 * ry + body
    u = np.clip((x - cx) / rx, -1, 1)
    arc = ry * np.sqrt(1 - u * u)
    inside = _smoothstep(1.0, 0.99, np.abs((x - cx) / rx))
    side = inside * _smoothstep(-1, 1, y - top) * _smoothstep(1, -1, y - bottom - arc)
    lid = _smoothstep(1.0, 0.98, ((x - cx) / rx) ** 2 + ((y - top) / ry) ** 2)
    floor_shadow = np.exp(
        -(
            ((x - cx - 0.35 * rx * -stage.light) / (1.3 * rx)) ** 2
            + ((y - bottom) / (2.5 * ry)) ** 2
        )
    )
    sweep = _fill(shape, colour) * (1 - 0.35 * floor_shadow)
    shade = 0.82 + 0.16 * u * -stage.light - 0.12 * u**6
    podium = _mix(sweep, colour * 1.02 * shade, side)
    podium = _mix(podium, colour * 1.1, lid)
    light = _light(stage, spot=0.14, vignette=0.3, corner=0.0, seamless=True)
    return _finish(podium, light, rng)


@dataclass(frozen=True)
class Scene:
    """One scene of the library: how to draw it and the phrases a prompt is compared with."""

    name: str
    render: Callable[[_Stage, np.random.Generator], np.ndarray]
    phrases: tuple[str, ...]
    light: float = -1.0  # where the key light comes from: -1 the left, 1 the right
    takes_colour: bool = False  # drawn in the prompt's colours (a backdrop, a sweep)
    natural: frozenset[str] = frozenset()  # colour words that describe the scene, not a tint


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


LIBRARY: tuple[Scene, ...] = (
    Scene(
        "marble",
        _marble,
        (
            "a white marble slab",
            "polished marble countertop",
            "luxury marble surface with grey veins",
            "elegant stone marble table",
        ),
        natural=_words("white grey gray gold golden"),
    ),
    Scene(
        "wood",
        _wood,
        (
            "a light wooden table",
            "oak wood tabletop",
            "natural light wood planks",
            "rustic wooden desk",
            "pale ash wood surface",
            "rustic pine wood planks",
        ),
    ),
    Scene(
        "wood-dark",
        lambda s, r: _wood_colours(s, r, _WOODS[1]),
        (
            "a dark walnut wood table",
            "dark wooden surface",
            "rich dark brown wood planks",
            "espresso stained dark wood",
        ),
    ),
    Scene(
        "industrial",
        _industrial,
        (
            "a concrete floor",
            "raw concrete wall and floor",
            "industrial loft with cement",
            "urban warehouse concrete",
            "grey cement surface",
        ),
    ),
    Scene(
        "linen",
        _linen,
        (
            "a soft linen cloth",
            "natural linen fabric tablecloth",
            "textile cotton drape",
            "cozy fabric background",
            "wrinkled linen sheet",
        ),
    ),
    Scene(
        "brick",
        _brick,
        (
            "in front of a red brick wall",
            "exposed brick wall",
            "whitewashed brick wall",
            "old brickwork masonry",
        ),
    ),
    Scene(
        "counter",
        _counter,
        (
            "a kitchen counter",
            "kitchen countertop with white tiles",
            "quartz worktop in a kitchen",
            "on the kitchen bench by the backsplash",
            "kitchen worktop by a subway tile backsplash",
        ),
    ),
    Scene(
        "beach",
        _beach,
        (
            "a sunny beach with sand and the sea",
            "golden sand by the ocean",
            "tropical beach with blue sky",
            "seaside summer shore with waves",
            "on the sand at the coast",
        ),
        light=1.0,
        natural=_words("blue golden gold yellow white turquoise sandy"),
    ),
    Scene(
        "snow",
        _snow,
        (
            "fresh white snow",
            "a snowy winter landscape",
            "snow covered mountains and pine trees",
            "cold frosty winter day",
            "christmas snow scene",
        ),
        natural=_words("white blue silver"),
    ),
    Scene(
        "forest",
        _forest,
        (
            "a mossy forest floor",
            "in the woods among trees",
            "green forest with sunlight through leaves",
            "woodland nature scene",
            "jungle with trees",
        ),
        light=1.0,
        natural=_words("green brown"),
    ),
    Scene(
        "garden",
        _garden,
        (
            "a sunny garden with flowers",
            "stone patio in a garden",
            "backyard with plants and greenery",
            "spring flowers outdoors",
            "park with green bushes",
        ),
        natural=_words("green pink yellow"),
    ),
    Scene(
        "sky",
        _sky_scene,
        (
            "against a blue sky with clouds",
            "clouds in the open sky",
            "heavenly sky background",
            "on a ledge under the sky",
            "airy summer sky",
        ),
        natural=_words("blue white"),
    ),
    Scene(
        "city",
        _city,
        (
            "a city street at night",
            "urban skyline with lights",
            "downtown buildings at dusk",
            "city lights bokeh",
            "rooftop overlooking the city",
        ),
        light=1.0,
        natural=_words("orange blue"),
    ),
    Scene(
        "cafe",
        _cafe,
        (
            "a table in a cafe",
            "coffee shop interior",
            "cosy restaurant table",
            "bistro with warm lights",
            "coffee bar counter",
            "cozy coffee shop table",
        ),
        natural=_words("brown warm"),
    ),
    Scene(
        "living-room",
        _living_room,
        (
            "a living room",
            "coffee table in a cozy living room",
            "home interior with sofa",
            "modern apartment lounge",
            "scandinavian home decor",
        ),
        light=1.0,
    ),
    Scene(
        "bathroom",
        _bathroom,
        (
            "a bathroom shelf",
            "spa bathroom with tiles",
            "on the vanity next to the sink",
            "clean bathroom interior",
            "skincare on a bathroom counter",
        ),
        natural=_words("white"),
    ),
    Scene(
        "stone",
        _stone,
        (
            "a natural slate stone slab",
            "rough grey stone surface",
            "rock and pebble background",
            "dark granite stone",
            "travertine stone plinth",
        ),
    ),
    Scene(
        "paper",
        _paper,
        (
            "a textured paper background",
            "craft paper sheet",
            "flat lay on colored paper",
            "cardboard paper backdrop",
        ),
        takes_colour=True,
    ),
    Scene(
        STUDIO,
        _studio,
        (
            "a plain studio backdrop",
            "seamless studio background",
            "simple minimal background",
            "neutral solid color background",
            "clean product photo on a plain backdrop",
        ),
        takes_colour=True,
    ),
    Scene(
        "gradient",
        _gradient,
        (
            "a soft color gradient background",
            "pastel gradient backdrop",
            "ombre background fading between two colors",
            "smooth gradient studio light",
            "ombre backdrop",
        ),
        takes_colour=True,
    ),
    Scene(
        "podium",
        _podium,
        (
            "on a round podium",
            "product on a display pedestal",
            "cylinder platform stage",
            "minimal podium with a plinth",
            "a showcase display stand",
        ),
        takes_colour=True,
    ),
)
_BY_NAME = {scene.name: scene for scene in LIBRARY}
# The spec's preset scenes, in its order; `scene` may also ask for the plain sweep.
PRESETS: tuple[str, ...] = (*SCENES, STUDIO)


def _wood_colours(
    stage: _Stage, rng: np.random.Generator, colours: tuple[np.ndarray, np.ndarray]
) -> np.ndarray:
    surface = _onto_surface(_wood_texture(rng, _surface_shape(stage), stage.unit, colours), stage)
    surface = _depth_of_field(surface, stage, 6 * stage.unit)
    wall = _plaster(stage, rng, _rgb(238, 232, 222))
    light = _light(stage, spot=0.14, vignette=0.28, key=0.08)
    return _finish(_stack(wall, surface, stage), light, rng)


# Colour words a prompt may use, as the colour a scene is tinted with or drawn in.
COLOURS: dict[str, tuple[int, int, int]] = {
    "white": (242, 242, 240),
    "black": (44, 44, 46),
    "grey": (152, 152, 154),
    "gray": (152, 152, 154),
    "silver": (196, 198, 202),
    "red": (204, 52, 52),
    "crimson": (176, 30, 50),
    "burgundy": (120, 32, 50),
    "pink": (240, 170, 190),
    "rose": (232, 150, 170),
    "coral": (242, 130, 110),
    "peach": (246, 196, 166),
    "orange": (238, 140, 60),
    "terracotta": (196, 110, 80),
    "yellow": (242, 212, 84),
    "gold": (212, 172, 86),
    "golden": (212, 172, 86),
    "beige": (224, 208, 182),
    "cream": (242, 232, 212),
    "ivory": (244, 238, 222),
    "tan": (206, 170, 130),
    "brown": (132, 92, 62),
    "green": (96, 164, 96),
    "sage": (172, 192, 162),
    "mint": (182, 228, 204),
    "olive": (128, 130, 64),
    "teal": (40, 142, 142),
    "turquoise": (64, 200, 200),
    "blue": (72, 124, 204),
    "navy": (32, 46, 92),
    "lavender": (196, 176, 226),
    "lilac": (200, 170, 220),
    "purple": (132, 82, 172),
    "violet": (140, 90, 200),
}
_WORD = re.compile(r"[a-z]+")
# How strongly a colour named for a scene that has its own colours tints it.
_TINT = 0.22


def colours_in(prompt: str | None) -> tuple[str, ...]:
    """The colour words of ``prompt``, in order, each once."""
    seen: dict[str, None] = {}
    for word in _WORD.findall((prompt or "").lower()):
        if word in COLOURS:
            seen.setdefault(word)
    return tuple(seen)


@dataclass(frozen=True)
class Choice:
    scene: str
    colours: tuple[str, ...] = ()  # colour words that tint or colour the scene
    score: float = 0.0  # the prompt's cosine similarity with the scene's nearest phrase


class SceneChooser:
    """Picks a library scene for a free-text prompt by sentence-embedding similarity.

    Each scene is described by a few phrases, embedded once at construction. A prompt's score
    for a scene is its cosine similarity with the scene's nearest phrase; each comma-separated
    part of ``negative_prompt`` takes away from the scenes it resembles (``_NEGATIVE`` times
    the similarity above ``_NEGATIVE_FLOOR``: unrelated words leave everything as it was). An
    empty prompt gives ``studio`` unless the negative prompt pushes it below another scene.
    """

    def __init__(self, encoder: TextEncoder, library: tuple[Scene, ...] = LIBRARY) -> None:
        self.encoder = encoder
        self.names = tuple(scene.name for scene in library)
        phrases = [phrase for scene in library for phrase in scene.phrases]
        self._owner = np.array([i for i, scene in enumerate(library) for _ in scene.phrases])
        self._phrases = encoder.embed(phrases)

    def scores(self, text: str) -> np.ndarray:
        """Per scene, the cosine similarity of ``text`` with its nearest phrase."""
        sims = self._phrases @ self.encoder.embed([text])[0]
        out = np.full(len(self.names), -1.0, np.float32)
        np.maximum.at(out, self._owner, sims)
        return out

    def choose(self, prompt: str | None, negative_prompt: str | None = None) -> Choice:
        text = (prompt or "").strip()
        if text:
            score = self.scores(text)
        else:
            score = np.zeros(len(self.names), np.float32)
            score[self.names.index(STUDIO)] = 0.1
        for part in (negative_prompt or "").split(","):
            if part.strip():
                score -= _NEGATIVE * np.maximum(self.scores(part.strip()) - _NEGATIVE_FLOOR, 0)
        best = int(np.argmax(score))
        studio = self.names.index(STUDIO)
        if text and score[best] < _VAGUE and score[studio] >= score[best] - _VAGUE_MARGIN:
            # Nothing in the prompt names a place or a surface ("a photo"): the neutral sweep.
            best = studio
        return Choice(self.names[best], colours_in(prompt), float(score[best]))


_NEGATIVE, _NEGATIVE_FLOOR = 2.0, 0.3
# A prompt whose nearest scene is this far off names none; studio then wins if it is not far
# behind (a negative prompt against it puts it far behind).
_VAGUE, _VAGUE_MARGIN = 0.42, 0.15


def _tinted(image: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """``image`` (uint8 HxWx3) tinted towards ``colour`` (RGB in [0, 1]) at unchanged brightness."""
    rgb = colour.reshape(3)
    luma = float(rgb @ np.array([0.299, 0.587, 0.114], np.float32))
    factor = 1 - _TINT + _TINT * rgb / max(luma, 0.05)
    return np.clip(image * factor.astype(np.float32) + 0.5, 0, 255).astype(np.uint8)


class ProceduralScenes:
    """Product backdrops drawn procedurally, chosen from a library of scenes by the prompt's
    meaning. No generative weights, one core, and the same ``seed`` gives the same image.

    The library (``LIBRARY``): the spec's six presets (``marble``, ``wood``, ``industrial``,
    ``linen``, ``brick``, ``counter``), the plain ``studio`` sweep, outdoor scenes (``beach``,
    ``snow``, ``forest``, ``garden``, ``sky``, ``city``), indoor ones (``cafe``,
    ``living-room``, ``bathroom``), surfaces (``wood-dark``, ``stone``, ``paper``) and
    backdrops (``gradient``, ``podium``). Each has a surface the subject stands on, seen in
    perspective and sharp at its foot, a background out of focus, and one key light whose side
    the operation's shadow and relight follow.

    ``scene`` (a preset) wins over the prompts, as in Pixelcut. Otherwise a ``SceneChooser``
    embeds the prompt with ``encoder`` and takes the nearest scene; colour words in the prompt
    colour a backdrop (``studio``, ``paper``, ``gradient``, ``podium``) and gently tint other
    scenes, except colours that describe the scene itself (a beach's blue sky).
    """

    def __init__(self, encoder: TextEncoder | None = None) -> None:
        self.chooser = SceneChooser(encoder if encoder is not None else MiniLmEncoder())

    def choose(self, scene: str | None, prompt: str | None, negative_prompt: str | None) -> Choice:
        """The scene to draw; raises ValueError for a ``scene`` that is not a preset."""
        if scene is None:
            return self.chooser.choose(prompt, negative_prompt)
        if scene not in PRESETS:
            raise ValueError(f"unknown scene {scene!r}; known: {', '.join(PRESETS)}")
        return Choice(scene)

    def backdrop(
        self,
        canvas: np.ndarray,
        *,
        scene: str | None,
        prompt: str | None,
        negative_prompt: str | None,
        seed: int,
    ) -> Backdrop:
        """The scene behind ``canvas`` (uint8 HxWx4, the subject placed), with its name and
        light. Raises ValueError for an unknown ``scene`` or a negative ``seed``."""
        choice = self.choose(scene, prompt, negative_prompt)
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        spec = _BY_NAME[choice.scene]
        colours = tuple(_rgb(*COLOURS[c]) for c in choice.colours)
        if spec.takes_colour:
            stage = _stage(canvas, spec.light, colours)
            return Backdrop(spec.render(stage, np.random.default_rng(seed)), spec.name, spec.light)
        image = spec.render(_stage(canvas, spec.light), np.random.default_rng(seed))
        tints = [
            c for name, c in zip(choice.colours, colours, strict=True) if name not in spec.natural
        ]
        if tints:
            image = _tinted(image, tints[0])
        return Backdrop(image, spec.name, spec.light)

    def background(
        self,
        canvas: np.ndarray,
        *,
        scene: str | None,
        prompt: str | None,
        negative_prompt: str | None,
        seed: int,
    ) -> np.ndarray:
        """A uint8 HxWx3 backdrop for ``canvas``: ``backdrop``'s image."""
        return self.backdrop(
            canvas, scene=scene, prompt=prompt, negative_prompt=negative_prompt, seed=seed
        ).image


BACKGROUND_GENERATORS: dict[str, Callable[..., BackgroundGenerator]] = {
    "procedural": ProceduralScenes,
}


def create_background_generator(name: str, **kwargs: object) -> BackgroundGenerator:
    """The background generator registered under ``name``, built with ``kwargs``."""
    try:
        factory = BACKGROUND_GENERATORS[name]
    except KeyError:
        raise ValueError(
            f"unknown background generator {name!r}; known: "
            f"{', '.join(sorted(BACKGROUND_GENERATORS))}"
        ) from None
    return factory(**kwargs)
