"""MediaPipe's pose models under LiteRT: the decoding pieces, and landmarks on real photos."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from retouch.engines import pose as lm
from retouch.engines.pose import MediaPipePose, _anchors, weighted_nms
from tests.utils.people import astronaut, person_scene


@pytest.fixture(scope="module")
def model() -> MediaPipePose:
    return MediaPipePose()


def test_anchors_follow_the_detector_layout() -> None:
    """Strides 8/16/32/32/32 on 224 px, two anchors per layer: 28x28x2 + 14x14x2 + 7x7x6."""
    anchors = _anchors()
    assert anchors.shape == (2254, 2)
    assert np.allclose(anchors[0], (0.5 / 28, 0.5 / 28)) and np.allclose(anchors[1], anchors[0])
    assert np.allclose(anchors[2], (1.5 / 28, 0.5 / 28))
    assert np.allclose(anchors[1568], (0.5 / 14, 0.5 / 14))
    assert np.allclose(anchors[1960:1966], (0.5 / 7, 0.5 / 7))
    assert np.allclose(anchors[-1], (6.5 / 7, 6.5 / 7))


def test_weighted_nms_merges_overlaps_by_score() -> None:
    boxes = np.float32([[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60]])
    keypoints = np.float32([[[0, 0]], [[3, 3]], [[55, 55]]])
    scores = np.float32([0.9, 0.3, 0.8])
    kept = weighted_nms(boxes, keypoints, scores)
    assert kept == [0, 2]
    assert np.allclose(boxes[0], [0.25, 0, 10.25, 10])
    assert np.allclose(keypoints[0], [[0.75, 0.75]])


@pytest.mark.slow
def test_astronaut_landmarks_land_on_her_body(model: MediaPipePose) -> None:
    photo = astronaut()
    pose = model.landmarks(photo)
    assert pose is not None
    p = pose.points
    # Her face: nose between the eyes, mouth below them, all in the top half, centred.
    assert p[lm.RIGHT_EYE][0] < p[lm.NOSE][0] < p[lm.LEFT_EYE][0]
    assert p[lm.NOSE][1] < p[lm.MOUTH_LEFT][1] and 150 < p[lm.NOSE][0] < 300 < 512
    assert 90 < p[lm.NOSE][1] < 180
    # Shoulders well below the chin, spread across her suit, both visible.
    chin = p[[lm.MOUTH_LEFT, lm.MOUTH_RIGHT], 1].mean() + 40
    for i in (lm.LEFT_SHOULDER, lm.RIGHT_SHOULDER):
        assert chin < p[i][1] < 300 and pose.visible(i)
    assert p[lm.RIGHT_SHOULDER][0] < 150 and p[lm.LEFT_SHOULDER][0] > 270
    # Her hips are below the frame, placed there with low visibility.
    for i in (lm.LEFT_HIP, lm.RIGHT_HIP):
        assert p[i][1] > 480 and pose.visibility[i] < 0.5


@pytest.mark.slow
def test_a_rotated_photo_gives_the_same_landmarks(model: MediaPipePose) -> None:
    """The crop turns with the body: the astronaut lying on her side (the photo turned 90
    degrees) gets the landmarks of the upright photo, turned: the face within 10 px."""
    photo = astronaut()
    upright = model.landmarks(photo)
    turned = model.landmarks(np.ascontiguousarray(np.rot90(photo)))  # counter-clockwise
    assert upright is not None and turned is not None
    w = photo.shape[1]
    # rot90: (x, y) -> (y, w - 1 - x)
    expected = np.stack([upright.points[:, 1], w - 1 - upright.points[:, 0]], axis=1)
    error = np.linalg.norm(turned.points - expected, axis=1)
    assert error[list(lm.FACE)].max() < 10
    assert error[[lm.LEFT_SHOULDER, lm.RIGHT_SHOULDER]].max() < 30  # 6% of the image


@pytest.mark.slow
def test_nobody_in_a_blank_image_or_a_drawing(model: MediaPipePose) -> None:
    assert model.landmarks(np.full((300, 300, 3), 128, np.uint8)) is None
    noise = np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    assert model.landmarks(noise) is None
    assert model.landmarks(person_scene().rgb) is None  # a cartoon is not a person to it


@pytest.mark.slow
def test_threads_share_one_model(model: MediaPipePose) -> None:
    """One instance serves every request thread: concurrent calls give the answers of
    sequential ones."""
    photos = [astronaut(), np.ascontiguousarray(astronaut()[:, ::-1])] * 4
    alone = [model.landmarks(photo) for photo in photos[:2]]
    with ThreadPoolExecutor(max_workers=4) as pool:
        together = list(pool.map(model.landmarks, photos))
    for i, pose in enumerate(together):
        expected = alone[i % 2]
        assert pose is not None and expected is not None
        assert np.array_equal(pose.points, expected.points)
