"""Try-on engines on a drawn person and drawn garments whose geometry is known.

The person (384x256) stands front-facing on a textured teal backdrop: a skin-tone head with
hair, a neck, a light shirt over a torso that narrows to a waist at row 176 and widens to hips
at row 214, a darker fold band across the chest, arms hanging with a gap beside the torso, dark
jeans whose legs part at row 226, and shoes. The garments are flat shapes on white: a red
T-shirt with sleeves, blue trousers, a green dress. Coverage is measured as the pixels of the
garment's hue and saturation against the drawn body parts the mode should cover. A pose model
does not take the drawing for a person, so these tests give the engine the landmarks a pose
model would find on it (``drawn_pose``); the real model runs on real photographs below.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from retouch.engines.base import Segmenter
from retouch.engines.pose import MediaPipePose, Pose
from retouch.engines.segmenter import create_segmenter
from retouch.engines.tryon import (
    DiffusionTryOn,
    GeometricTryOn,
    body_from_pose,
    clothing_region,
    colour_name,
    create_try_on_engine,
    find_body,
)
from retouch.errors import UnknownForeground
from tests.utils.diffusion import build_tiny_pipeline
from tests.utils.engines import FixedPose, MaskSegmenter
from tests.utils.images import iou
from tests.utils.people import (
    BLUE,
    CROTCH,
    FOLD,
    GARMENTS,
    HIPS,
    MODE_OF,
    SHOULDER,
    SIZE,
    SOLES,
    WAIST,
    Scene,
    astronaut,
    drawn_pose,
    expected_cover,
    garment_photo,
    garment_rgba,
    landmark_face,
    landmark_torso,
    person_scene,
    untouched_zone,
    wearing,
)

DRAWN = FixedPose(drawn_pose())


@pytest.fixture(scope="module")
def scene() -> Scene:
    return person_scene()


@pytest.fixture(scope="module")
def segmenter() -> Segmenter:
    return create_segmenter("u2netp", threads=1)


@pytest.fixture(scope="module")
def dressed(scene: Scene, segmenter: Segmenter) -> dict[str, np.ndarray]:
    engine = GeometricTryOn(segmenter, DRAWN)
    return {
        name: engine.dress(scene.rgb, garment_rgba(name), mode=MODE_OF[name], seed=0)
        for name in GARMENTS
    }


def test_body_rows_from_the_drawn_landmarks(scene: Scene) -> None:
    body = body_from_pose(drawn_pose(), scene.mask, scene.rgb)
    assert abs(body.shoulder - SHOULDER) <= 2
    assert WAIST <= body.waist <= WAIST + 12  # trousers sit at the hips, below the waist
    assert HIPS <= body.hips <= HIPS + 10
    assert abs(body.crotch - CROTCH) <= 2
    assert body.ankle == SOLES - round(0.04 * (SOLES - 28))
    # Below the shoulders the body is the torso, not the arms hanging beside it.
    assert (body.left[150], body.right[150]) == (86, 171)
    assert body.left[300] < 110 and body.right[300] > 150  # both legs and the gap between
    # Never painted: the head, everything above the chin, the hands.
    assert body.protected[scene.parts["head"]].all()
    assert not body.protected[scene.parts["torso"]].any()
    hands = np.zeros(SIZE, bool)
    hands[228:238, 46:58] = True
    assert body.protected[hands & scene.parts["arms"]].mean() > 0.95


def test_hidden_hips_keep_the_torso_in_proportion(scene: Scene) -> None:
    """A portrait's hips are out of frame and their landmarks mere guesses: wherever the model
    puts them, the torso stays between one and two shoulder spans tall (72 px here)."""
    pose = drawn_pose()
    for hip_y, torso in ((120, 72), (214, 110), (900, 144)):
        points = pose.points.copy()
        points[[23, 24], 1] = hip_y
        body = body_from_pose(Pose(points, pose.visibility, 1.0), scene.mask, scene.rgb)
        assert body.hips == round(104 + torso * 1.08)


def test_a_figure_in_profile_keeps_a_torso(scene: Scene) -> None:
    """Seen from the side the shoulder landmarks overlap: the face's size keeps the body's
    scale, so the torso is not squashed to a sliver under the shoulders."""
    pose = drawn_pose()
    points = pose.points.copy()
    points[[11, 12], 0] = 128
    body = body_from_pose(Pose(points, pose.visibility, 1.0), scene.mask, scene.rgb)
    assert body.hips - body.shoulder > 60 and body.waist > body.shoulder + 40


def test_specks_do_not_derail_the_trunk(scene: Scene) -> None:
    """Holes like the segmenter's at the top of the legs' gap and in the torso: the body's
    columns still span the torso and both legs."""
    mask = scene.mask.copy()
    mask[CROTCH - 6, 129] = False
    mask[CROTCH - 4, 128] = False
    mask[160, 110:113] = False
    body = body_from_pose(drawn_pose(), mask, scene.rgb)
    assert abs(body.left[160] - 86) <= 1 and abs(body.right[160] - 171) <= 1
    assert body.left[300] < 110 and body.right[300] > 150


def test_a_figure_cut_off_at_the_knees(scene: Scene) -> None:
    """The ankles lie below the frame, and the trousers still cover the legs down to it."""
    rgb, mask = np.ascontiguousarray(scene.rgb[:300]), scene.mask[:300]
    body = body_from_pose(drawn_pose(), mask, rgb)
    assert body.ankle > 300
    out = GeometricTryOn(MaskSegmenter(mask), DRAWN).dress(
        rgb, garment_rgba("trousers"), mode="lower", seed=0
    )
    legs = scene.parts["legs"][:300] & (np.arange(300)[:, None] >= CROTCH)
    assert wearing(out, "trousers")[legs].mean() > 0.9


def test_a_figure_cut_off_at_the_chest(scene: Scene) -> None:
    """A head-and-shoulders crop: the shoulders are in frame, the hips 100 px below it. The top
    still covers the chest down to the frame, and the head stays untouched."""
    rgb, mask = np.ascontiguousarray(scene.rgb[:170]), scene.mask[:170]
    out = GeometricTryOn(MaskSegmenter(mask), DRAWN).dress(
        rgb, garment_rgba("tshirt"), mode="upper", seed=0
    )
    chest = scene.parts["torso"][:170] & (np.arange(170)[:, None] >= SHOULDER + 8)
    assert wearing(out, "tshirt")[chest].mean() > 0.9
    assert np.array_equal(out[scene.parts["head"][:170]], rgb[scene.parts["head"][:170]])


def test_a_body_part_out_of_frame_is_unknown_foreground(scene: Scene) -> None:
    """A close-up of the head: the shoulders are below it, so there is nowhere to put a top
    (and an unchanged photo is no result)."""
    rgb, mask = np.ascontiguousarray(scene.rgb[:80]), scene.mask[:80]
    engine = GeometricTryOn(MaskSegmenter(mask), DRAWN)
    with pytest.raises(UnknownForeground, match="not in the person image"):
        engine.dress(rgb, garment_rgba("tshirt"), mode="upper", seed=0)


@pytest.mark.slow
def test_landmarks_of_the_segmented_person(scene: Scene, segmenter: Segmenter) -> None:
    alpha, mask, body = find_body(segmenter, DRAWN, scene.rgb)
    assert iou(mask, scene.mask) >= 0.97
    assert abs(body.shoulder - SHOULDER) <= 2
    assert abs(body.crotch - CROTCH) <= 2
    assert (body.left[150], body.right[150]) == (86, 171)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(GARMENTS))
def test_garment_covers_its_body_region(
    scene: Scene, dressed: dict[str, np.ndarray], name: str
) -> None:
    out = dressed[name]
    assert out.shape == scene.rgb.shape and out.dtype == np.uint8
    assert not wearing(scene.rgb, name).any()
    assert iou(wearing(out, name), expected_cover(scene, name)) >= 0.7


@pytest.mark.slow
@pytest.mark.parametrize("name", list(GARMENTS))
def test_backdrop_and_head_are_untouched(
    scene: Scene, dressed: dict[str, np.ndarray], name: str
) -> None:
    out = dressed[name]
    keep = untouched_zone(scene) | scene.parts["head"]
    assert np.array_equal(out[keep], scene.rgb[keep])


@pytest.mark.slow
def test_shading_carries_over(scene: Scene, dressed: dict[str, np.ndarray]) -> None:
    """The fold band across the chest stays darker than the shirt above and below it."""
    luminance = cv2.cvtColor(dressed["tshirt"], cv2.COLOR_RGB2GRAY).astype(np.float32)
    cols = slice(100, 156)
    band = luminance[FOLD[0] + 2 : FOLD[1] - 2, cols].mean()
    around = np.r_[luminance[FOLD[0] - 12 : FOLD[0] - 2, cols], luminance[FOLD[1] + 2 : 162, cols]]
    assert band < 0.85 * around.mean()


def test_long_sleeves_follow_the_arms_down_to_the_elbows(scene: Scene) -> None:
    """The sleeves stick out at 30 degrees on the flat garment; on the figure they hang along
    both arms from the shoulders toward the elbows, and the torso is covered as by a T-shirt."""
    engine = GeometricTryOn(MaskSegmenter(scene.mask), DRAWN)
    out = engine.dress(scene.rgb, garment_rgba("long-sleeved"), mode="upper", seed=0)
    worn = wearing(out, "long-sleeved")
    rows, cols = np.arange(SIZE[0])[:, None], np.arange(SIZE[1])[None, :]
    upper_arms = scene.parts["arms"] & ~scene.parts["torso"] & (rows >= 105) & (rows < 165)
    for side in (cols < SIZE[1] // 2, cols >= SIZE[1] // 2):
        assert worn[upper_arms & side].mean() > 0.6
    assert worn[expected_cover(scene, "tshirt")].mean() > 0.9
    assert np.array_equal(out[untouched_zone(scene)], scene.rgb[untouched_zone(scene)])


def test_stubbed_person_is_dressed_by_the_drawn_mask(scene: Scene) -> None:
    """With the true mask as the segmentation: the same contract, no model needed."""
    engine = GeometricTryOn(MaskSegmenter(scene.mask), DRAWN)
    out = engine.dress(scene.rgb, garment_rgba("tshirt"), mode="upper", seed=0)
    outside = ~scene.mask | (np.arange(SIZE[0])[:, None] < SHOULDER - 2)
    assert np.array_equal(out[outside], scene.rgb[outside])
    assert iou(wearing(out, "tshirt"), expected_cover(scene, "tshirt")) >= 0.7
    assert np.array_equal(
        engine.dress(scene.rgb, garment_rgba("tshirt"), mode="upper", seed=9), out
    )


def test_nobody_to_dress_is_unknown_foreground(scene: Scene) -> None:
    """No pose means nobody to dress, whatever the segmenter sees (it finds the drawn figure
    here): silhouette rules are not asked to guess where the body is."""
    segmenter = MaskSegmenter(scene.mask)
    engine = GeometricTryOn(segmenter, FixedPose(None))
    with pytest.raises(UnknownForeground, match="No person"):
        engine.find_person(scene.rgb)
    with pytest.raises(UnknownForeground, match="No person"):
        engine.dress(scene.rgb, garment_rgba("tshirt"), mode="upper", seed=0)
    assert not segmenter.started.is_set()  # the pose decided; no mask was needed


@pytest.mark.parametrize(
    ("person", "garment", "mode", "message"),
    [
        (np.zeros((*SIZE, 4), np.uint8), garment_rgba("tshirt"), "upper", "person must be"),
        (np.zeros((*SIZE, 3), np.uint8), garment_photo("tshirt")[0], "upper", "garment must be"),
        (np.zeros((*SIZE, 3), np.uint8), garment_rgba("tshirt"), "auto", "mode must be"),
        (np.zeros((*SIZE, 3), np.uint8), np.zeros((8, 8, 4), np.uint8), "upper", "no opaque"),
    ],
    ids=["rgba-person", "rgb-garment", "auto-mode", "empty-garment"],
)
def test_bad_arguments_are_caller_bugs(
    person: np.ndarray, garment: np.ndarray, mode: str, message: str
) -> None:
    engine = GeometricTryOn(MaskSegmenter(np.ones(SIZE, bool)), DRAWN)
    with pytest.raises(ValueError, match=message):
        engine.dress(person, garment, mode=mode, seed=0)


@pytest.mark.parametrize(
    ("rgb", "name"),
    [
        ((200, 30, 35), "red"),
        ((40, 70, 190), "blue"),
        ((40, 160, 60), "green"),
        ((245, 245, 240), "white"),
        ((20, 20, 25), "black"),
        ((128, 128, 128), "grey"),
        ((120, 70, 30), "brown"),
        ((230, 120, 180), "pink"),
    ],
)
def test_colour_names(rgb: tuple[int, int, int], name: str) -> None:
    assert colour_name(rgb) == name


def test_registry() -> None:
    segmenter = MaskSegmenter(np.ones(SIZE, bool))
    engine = create_try_on_engine("geometric", segmenter=segmenter, pose=DRAWN, threads=1)
    assert isinstance(engine, GeometricTryOn) and engine.segmenter is segmenter
    assert engine.pose is DRAWN
    with pytest.raises(ValueError, match="unknown try-on engine 'vton'; known: diffusion, geom"):
        create_try_on_engine("vton", segmenter=segmenter, pose=DRAWN, threads=1)
    with pytest.raises(ValueError, match="needs a weights path"):
        create_try_on_engine("diffusion", segmenter=segmenter, pose=DRAWN, threads=1)


@pytest.mark.slow
def test_diffusion_repaints_only_the_clothing_region(scene: Scene, tmp_path: Path) -> None:
    """On a tiny random pipeline (its pictures are noise): the plumbing, not the picture."""
    build_tiny_pipeline(tmp_path)
    segmenter = MaskSegmenter(scene.mask)
    engine = create_try_on_engine(
        "diffusion", segmenter=segmenter, pose=DRAWN, threads=1, weights_path=tmp_path, steps=2
    )
    assert isinstance(engine, DiffusionTryOn)
    body = body_from_pose(drawn_pose(), scene.mask, scene.rgb)
    for name, mode in MODE_OF.items():
        region = clothing_region(scene.mask, body, mode)
        out = engine.dress(scene.rgb, garment_rgba(name), mode=mode, seed=1)
        assert out.shape == scene.rgb.shape and out.dtype == np.uint8
        assert np.array_equal(out[~region], scene.rgb[~region])
        assert not np.array_equal(out[region], scene.rgb[region])
        assert not region[: body.shoulder].any() and not (region & ~scene.mask).any()
        assert not (region & body.protected).any()
    again = engine.dress(scene.rgb, garment_rgba("dress"), mode="full", seed=1)
    assert np.array_equal(again, out)


# The real pose model on real photographs.


@pytest.fixture(scope="module")
def pose_model() -> MediaPipePose:
    return MediaPipePose()


@pytest.fixture(scope="module")
def astronaut_dressed(segmenter: Segmenter, pose_model: MediaPipePose) -> np.ndarray:
    engine = GeometricTryOn(segmenter, pose_model)
    return engine.dress(astronaut(), garment_rgba("tshirt", BLUE), mode="upper", seed=0)


@pytest.mark.slow
def test_the_astronauts_face_and_hair_are_untouched(
    astronaut_dressed: np.ndarray, pose_model: MediaPipePose
) -> None:
    """The regression of issue 14: the silhouette rules put the shoulder line at her chin and
    painted her face and neck. Every pixel of her face, and of everything above her chin
    (hair, background), is the photo's own."""
    photo = astronaut()
    pose = pose_model.landmarks(photo)
    assert pose is not None
    face = landmark_face(pose, photo.shape)
    assert face.sum() > 5000
    assert np.array_equal(astronaut_dressed[face], photo[face])
    chin = round(float(pose.points[[9, 10], 1].mean()))
    assert np.array_equal(astronaut_dressed[:chin], photo[:chin])


@pytest.mark.slow
def test_the_astronauts_torso_is_covered(
    astronaut_dressed: np.ndarray, pose_model: MediaPipePose
) -> None:
    photo = astronaut()
    pose = pose_model.landmarks(photo)
    assert pose is not None
    torso = landmark_torso(pose, photo.shape)
    assert torso.sum() > 20000
    assert not wearing(photo, "tshirt", BLUE)[torso].any()
    assert wearing(astronaut_dressed, "tshirt", BLUE)[torso].mean() > 0.85
    # Outside the torso's rows and the arms nothing but the garment's own edge changes.
    changed = np.abs(astronaut_dressed.astype(int) - photo.astype(int)).max(axis=2) > 8
    shoulders = round(float(pose.points[[11, 12], 1].min()))
    assert changed[: shoulders - 40].sum() == 0
