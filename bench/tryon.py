"""Try-on on real and synthetic people: a contact sheet to look at, and the numbers behind it.

People: scikit-image's astronaut (a head-and-shoulders portrait, hips below the frame), two crops
of ultralytics' sample photos (a man pointing, three-quarter length, from ``zidane.jpg``; a man
standing full length from ``bus.jpg``; read from that package's files when it is installed with
``pip install --no-deps ultralytics==8.4.190``, skipped otherwise) and the drawn figure of
``tests/utils/people.py`` with the landmarks a pose model would give it (the model does not take
a drawing for a person). Garments, made here: a red T-shirt, blue trousers and a green dress
flat on white (keyed out as an API call without extraction would) and a striped long-sleeved
top already cut out (RGBA).

Per person and garment it prints, with the engine the API uses by default (``geometric`` with
the u2netp segmenter and MediaPipe's pose models):

* ``cover``: the share of the body region the landmarks define that the garment changed (the
  torso quadrilateral shoulders-hips shrunk by a fifth for tops and dresses; bands along the
  legs, hips to ankles, for trousers; n/a when they are out of frame);
* ``face``: the mean absolute change (levels) inside the face landmarks' box (must be 0);
* ``above chin``: pixels changed above the mouth's row plus the chin's depth (must be 0);
* ``background``: the share of pixels off the person's silhouette (eroded by 2% of the image)
  that changed;
* ``ms``: the try-on's wall time.

The sheet (``--out``, default ``docs/quality/try-on.png``) has one row per person: the photo,
then garment and result for each garment, labelled. Run from the repository root::

    .venv/bin/python bench/tryon.py
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from pathlib import Path

import cv2
import numpy as np

from retouch.engines.pose import MediaPipePose, Pose, PoseEstimator
from retouch.engines.segmenter import create_segmenter
from retouch.engines.tryon import GeometricTryOn, silhouette
from retouch.ops.try_on import garment_as_is, resolve_mode
from tests.utils.engines import FixedPose
from tests.utils.people import (
    astronaut,
    drawn_pose,
    garment_photo,
    landmark_face,
    landmark_torso,
    person_scene,
)

TILE = 256


def full_body_photo() -> np.ndarray | None:
    """A man standing full length, head to shoes (a crop of ultralytics' ``bus.jpg``), or None
    when that package is not installed (``pip install --no-deps ultralytics==8.4.190``: only
    its sample photo is read, never its code)."""
    spec = importlib.util.find_spec("ultralytics")
    if spec is None or spec.submodule_search_locations is None:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "assets" / "bus.jpg"
    if not path.is_file():
        return None
    return np.ascontiguousarray(cv2.imread(str(path))[300:950, 0:300, ::-1])


def three_quarter_photo() -> np.ndarray | None:
    """A man pointing, head to thighs (a crop of ultralytics' ``zidane.jpg``), or None."""
    photo = full_body_photo()
    if photo is None:
        return None

    spec = importlib.util.find_spec("ultralytics")
    assert spec is not None and spec.submodule_search_locations is not None
    path = Path(next(iter(spec.submodule_search_locations))) / "assets" / "zidane.jpg"
    return np.ascontiguousarray(cv2.imread(str(path))[:, 640:1180, ::-1])


def striped_top() -> np.ndarray:
    """A long-sleeved top with navy and off-white stripes, cut out (uint8 RGBA): on white, the
    off-white stripes would be keyed out with the backdrop."""
    h, w = 300, 300
    mask = np.zeros((h, w), np.uint8)
    body = [(95, 10), (125, 25), (175, 25), (205, 10), (240, 40), (295, 250), (265, 262)]
    body += [(215, 110), (215, 290), (85, 290), (85, 110), (35, 262), (5, 250), (60, 40)]
    cv2.fillPoly(mask, [np.array(body, np.int32)], 1)
    rows = np.arange(h)[:, None, None]
    colour = np.where((rows // 14) % 2 == 0, (30, 40, 90), (235, 235, 225)).astype(np.uint8)
    image = np.full((h, w, 3), 255, np.uint8)
    stripes = np.broadcast_to(colour, (h, w, 3))
    image[mask > 0] = stripes[mask > 0]
    return np.dstack([image, mask * 255])


def garments() -> dict[str, tuple[np.ndarray, str]]:
    return {
        "T-shirt": (garment_photo("tshirt")[0], "upper"),
        "striped top": (striped_top(), "upper"),
        "trousers": (garment_photo("trousers")[0], "lower"),
        "dress": (garment_photo("dress")[0], "full"),
    }


def legs_region(pose: Pose, shape: tuple[int, ...]) -> np.ndarray:
    """Bands along both legs, hips over knees to ankles, a third of the hips' span wide."""
    p = pose.points
    width = max(2, round(0.35 * float(np.linalg.norm(p[23] - p[24]))))
    mask = np.zeros(shape[:2], np.uint8)
    for chain in ((23, 25, 27), (24, 26, 28)):
        pts = np.rint(p[list(chain)]).astype(np.int32)
        cv2.polylines(mask, [pts], False, 1, width)
    return mask.astype(bool)


def label(tile: np.ndarray, text: str) -> np.ndarray:
    out = tile.copy()
    cv2.rectangle(out, (0, 0), (out.shape[1], 22), (0, 0, 0), -1)
    cv2.putText(out, text, (5, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1)
    return out


def fit(image: np.ndarray, width: int) -> np.ndarray:
    """``image`` scaled to fit TILE px high and ``width`` wide, padded white to that box."""
    h, w = image.shape[:2]
    f = min((TILE - 22) / h, width / w)
    small = cv2.resize(image, (max(1, round(w * f)), max(1, round(h * f))), cv2.INTER_AREA)
    box = np.full((TILE, width, 3), 255, np.uint8)
    y, x = 22 + (TILE - 22 - small.shape[0]) // 2, (box.shape[1] - small.shape[1]) // 2
    box[y : y + small.shape[0], x : x + small.shape[1]] = small
    return box


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("docs/quality/try-on.png"))
    args = parser.parse_args(argv)

    segmenter = create_segmenter("u2netp", threads=1)
    model = MediaPipePose()
    people: list[tuple[str, np.ndarray, PoseEstimator]] = [("astronaut", astronaut(), model)]
    three_quarter, full = three_quarter_photo(), full_body_photo()
    if three_quarter is not None and full is not None:
        people += [("three-quarter", three_quarter, model), ("full length", full, model)]
    else:
        print("ultralytics not installed: its two photos are skipped")
    people.append(("drawn figure*", person_scene().rgb, FixedPose(drawn_pose())))

    rows = []
    print(
        f"{'person':15} {'garment':12} {'cover':>6} {'face':>6} {'above chin':>10} "
        f"{'background':>10} {'ms':>6}"
    )
    for name, photo, estimator in people:
        pose = estimator.landmarks(photo)
        assert pose is not None, f"no pose found on {name}"
        engine = GeometricTryOn(segmenter, estimator)
        alpha = segmenter.mask(photo)
        person = silhouette(alpha)
        grow = max(3, round(0.02 * max(photo.shape[:2])))
        off_person = cv2.dilate(person.astype(np.uint8), np.ones((grow, grow), np.uint8)) == 0
        face = landmark_face(pose, photo.shape)
        drop = float(pose.points[[9, 10], 1].mean() - pose.points[[2, 5], 1].mean())
        chin = max(0, round(float(pose.points[[9, 10], 1].mean()) + drop))
        # Every row as wide as the widest person; garments get a small square.
        width = round(TILE * 1.1)
        tiles = [label(fit(photo, width), name)]
        for garment_name, (garment_photo_rgb, mode) in garments().items():
            garment = garment_as_is(garment_photo_rgb)
            resolve_mode(garment, mode)
            started = time.perf_counter()
            out = engine.dress(photo, garment, mode=mode, seed=0)
            ms = (time.perf_counter() - started) * 1000
            changed = np.abs(out.astype(int) - photo.astype(int)).max(axis=2) > 12
            region = (
                legs_region(pose, photo.shape)
                if mode == "lower"
                else landmark_torso(pose, photo.shape)
            )
            cover = changed[region].mean() if region.any() else float("nan")
            shown_cover = f"{cover:6.2f}" if region.any() else "   n/a"  # legs out of frame
            face_change = np.abs(out[face].astype(int) - photo[face].astype(int)).mean()
            above = int((out[:chin] != photo[:chin]).any(axis=2).sum())
            background = changed[off_person].mean()
            print(
                f"{name:15} {garment_name:12} {shown_cover} {face_change:6.2f} {above:10d} "
                f"{background:10.4f} {ms:6.0f}"
            )
            shown = garment_as_is(garment_photo_rgb)
            flat = shown[..., :3] * (shown[..., 3:] / 255) + 255 * (1 - shown[..., 3:] / 255)
            tiles.append(label(fit(flat.astype(np.uint8), TILE // 2), garment_name))
            tiles.append(label(fit(out, width), f"{mode}: cover {shown_cover.strip()}"))
        rows.append(np.hstack(tiles))
    sheet = np.vstack(rows)
    note = np.full((24, sheet.shape[1], 3), 255, np.uint8)
    cv2.putText(
        note,
        "* drawn figure: landmarks given (a pose model finds no person in a "
        "drawing); all others: MediaPipe pose + u2netp, engine 'geometric'",
        (5, 16),
        cv2.FONT_HERSHEY_SIMPLEX,
        0.45,
        (0, 0, 0),
        1,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), np.vstack([sheet, note])[:, :, ::-1])
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
