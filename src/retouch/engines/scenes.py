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

from retouch.engines.base import BackgroundGenerator
from retouch.ops.cutout import subject_box

SCENES: tuple[str, ...] = ("marble", "wood", "industrial", "linen", "brick", "counter")
STUDIO = "studio"

# Words of a prompt that pick a scene. Exact words (lower-cased), so variants are listed. Words
# that often name the product rather than the scene ("bar" of soap, "canvas" bag, "sheet" mask,
# "paper" bag) are left out.
_KEYWORDS: dict[str, frozenset[str]] = {
    "marble": frozenset(
        "marble marbled stone onyx travertine luxury luxurious elegant spa bathroom".split()
    ),
    "wood": frozenset(
        "wood wooden woody oak walnut pine timber plank planks table tabletop rustic desk "
        "cabin farmhouse".split()
    ),
    "industrial": frozenset(
        "industrial concrete cement metal metallic steel urban loft warehouse garage factory "
        "grunge gritty".split()
    ),
    "linen": frozenset(
        "linen linens fabric fabrics cloth textile cotton bed bedding napkin woven burlap "
        "cozy".split()
    ),
    "brick": frozenset("brick bricks brickwork masonry cafe pub street".split()),
    "counter": frozenset(
        "counter counters countertop countertops kitchen worktop granite quartz tile tiles "
        "backsplash bakery cooking food".split()
    ),
    STUDIO: frozenset(
        "studio plain seamless minimal minimalist simple backdrop sweep neutral infinity".split()
    ),
}
_WORD = re.compile(r"[a-z]+")


def scene_for_prompt(prompt: str | None, negative_prompt: str | None = None, *, seed: int) -> str:
    """The look a prompt asks for; see ``ProceduralScenes`` for the rules."""
    words = _WORD.findall((prompt or "").lower())
    banned = set(_WORD.findall((negative_prompt or "").lower()))
    allowed = [name for name, keys in _KEYWORDS.items() if not keys & banned]

    def rank(name: str) -> tuple[int, int]:
        hits = [i for i, word in enumerate(words) if word in _KEYWORDS[name]]
        return len(hits), -(hits[0] if hits else len(words))

    best = max(allowed, key=rank, default=None)
    if best is not None and rank(best)[0] > 0:
        return best
    if STUDIO in allowed or not allowed:
        return STUDIO
    return allowed[seed % len(allowed)]


@dataclass(frozen=True)
class _Stage:
    """Where things are in the frame, in output pixels."""

    h: int
    w: int
    horizon: int  # first row of the surface: its far edge, meeting the back wall
    base: float  # the row the subject stands on, which the camera is focused on
    centre: float  # the subject's centre column
    unit: float  # pixels per pixel of a 1024 px frame, so textures keep their size in frame


def _stage(canvas: np.ndarray) -> _Stage:
    h, w = canvas.shape[:2]
    box = subject_box(canvas[..., 3], threshold=127, min_fraction=0)
    if box is None:
        base, centre = 0.8 * h, w / 2
    else:
        base, centre = float(box.bottom), (box.left + box.right) / 2
    # The far edge sits a little above the subject's foot so that it stands on the surface,
    # while the wall and the surface both keep a useful share of the frame.
    horizon = round(float(np.clip(base - 0.2 * h, 0.38 * h, 0.7 * h)))
    return _Stage(h, w, horizon, base, centre, min(h, w) / 1024)


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


def _mix(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """``a`` where ``t`` is 0, ``b`` where it is 1: ``a`` and ``b`` planar images or colours,
    ``t`` HxW."""
    return a + (b - a) * t


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
    src = np.float32([[0, 0], [tw, 0], [tw, th], [0, th]])
    dst = np.float32(
        [
            [c - _FAR * w / 2, 0],
            [c + _FAR * w / 2, 0],
            [c + _NEAR * w / 2, rows],
            [c - _NEAR * w / 2, rows],
        ]
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
    side = key * (0.5 - x)
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
    return cv2.merge(list(_TONE[image.astype(np.uint16)]))


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
    return grey * _rgb(250, 255, 255)


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
    return cv2.resize(1 + slope, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)


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
    weft = rng.standard_normal((rows, max(2, w // 30)), dtype=np.float32)
    weft = cv2.resize(weft, (w, rows), interpolation=cv2.INTER_LINEAR)[row[:, 0].astype(np.int32)]
    warp = rng.standard_normal((max(2, h // 30), cols), dtype=np.float32)
    warp = cv2.resize(warp, (cols, h), interpolation=cv2.INTER_LINEAR)[:, col[0].astype(np.int32)]
    over = (row + col) % 2 == 0
    crown = np.where(over, np.sin(np.pi * (u - col)), np.sin(np.pi * (v - row)))
    # Slubs show most along the weft, the threads running across the cloth.
    weave = 0.93 + 0.07 * crown + np.where(over, 0.04 * warp, 0.07 * weft)
    return weave * _folds(rng, shape, (2, 3), (-0.6, 0.4), 0.05)


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


_PAPERS = (_rgb(236, 234, 230), _rgb(216, 219, 224), _rgb(234, 224, 210), _rgb(214, 220, 212))


def _studio(stage: _Stage, rng: np.random.Generator) -> np.ndarray:
    """A seamless paper sweep: one colour, shaped only by the light."""
    paper = _fill((stage.h, stage.w), _PAPERS[rng.integers(len(_PAPERS))])
    light = _light(stage, spot=0.16, vignette=0.3, corner=0.0, seamless=True)
    return _finish(paper, light, rng)


_RENDERERS: dict[str, Callable[[_Stage, np.random.Generator], np.ndarray]] = {
    "marble": _marble,
    "wood": _wood,
    "industrial": _industrial,
    "linen": _linen,
    "brick": _brick,
    "counter": _counter,
    STUDIO: _studio,
}


class ProceduralScenes:
    """Tabletop product backdrops drawn procedurally: one look per Pixelcut ``scene`` and a
    plain studio sweep. No weights, one core, and the same ``seed`` gives the same image.

    The looks: ``marble`` (white Carrara or gold-veined Calacatta slab, plaster wall),
    ``wood`` (oak, walnut or ash planks, plaster wall), ``industrial`` (polished concrete floor,
    formwork concrete wall with tie holes), ``linen`` (a linen cloth on the table and hanging
    behind it), ``brick`` (brick wall, red or whitewashed, over dark reclaimed wood),
    ``counter`` (a flecked quartz worktop and a blurred white subway-tile backsplash) and
    ``studio`` (seamless paper). The seed also picks among each look's colourways.

    Which look, when ``scene`` is None (Pixelcut ignores the prompts when it is given):

    * The prompt's words (runs of letters, lower-cased) are matched exactly against each look's
      keywords (``_KEYWORDS``: "marble", "stone"...; "wood", "table"...; "concrete", "metal"...;
      "linen", "fabric", "cloth"...; "brick"...; "kitchen", "counter", "granite"...;
      "studio", "plain", "minimal"...).
    * A look any of whose keywords is in ``negative_prompt`` is excluded.
    * Of the rest, the look with the most keyword hits wins; a tie goes to the look named first.
    * No hits: ``studio``; if the negative prompt excludes that too, the seed picks among the
      looks still allowed (``studio`` again when all are excluded).

    The subject's position sets the composition: the table's far edge (the horizon) sits a
    fifth of the frame above the subject's foot, the focus is on the foot, and a soft spot of
    light falls on the wall behind the subject.
    """

    def background(
        self,
        canvas: np.ndarray,
        *,
        scene: str | None,
        prompt: str | None,
        negative_prompt: str | None,
        seed: int,
    ) -> np.ndarray:
        """A uint8 HxWx3 backdrop for ``canvas`` (uint8 HxWx4, the subject placed).

        Raises ValueError for an unknown ``scene`` or a negative ``seed``.
        """
        look = scene if scene is not None else scene_for_prompt(prompt, negative_prompt, seed=seed)
        try:
            render = _RENDERERS[look]
        except KeyError:
            raise ValueError(f"unknown scene {look!r}; known: {', '.join(_RENDERERS)}") from None
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        return render(_stage(canvas), np.random.default_rng(seed))


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
