"""The u2netp segmenter on synthetic product shots whose true mask is known."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest

from retouch.engines.segmenter import U2NetSegmenter, create_segmenter
from retouch.ops.cutout import subject_box
from tests.utils.images import BACKGROUNDS, SIZE, composite, iou


@pytest.fixture(scope="module")
def segmenter() -> U2NetSegmenter:
    return U2NetSegmenter(threads=1)


Shot = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


@pytest.fixture(scope="module")
def shots(segmenter: U2NetSegmenter) -> dict[str, Shot]:
    """Per background: the image, its true mask, the model's raw alpha and the served alpha."""
    out = {}
    for name in BACKGROUNDS:
        img, truth = composite(name)
        out[name] = (img, truth, segmenter.saliency(img), segmenter.mask(img))
    return out


def test_unknown_segmenter_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="u2netp, u2netp-hq"):
        create_segmenter("u2net-full", threads=1)


def test_sizes_must_be_usable() -> None:
    with pytest.raises(ValueError, match="sizes"):
        U2NetSegmenter(sizes=())


@pytest.mark.slow
def test_session_options_are_explicit() -> None:
    model = create_segmenter("u2netp", threads=2)
    assert isinstance(model, U2NetSegmenter)
    options = model.session.get_session_options()
    assert model.session.get_providers() == ["CPUExecutionProvider"]
    assert (options.intra_op_num_threads, options.inter_op_num_threads) == (2, 1)
    assert options.enable_cpu_mem_arena is False


@pytest.mark.slow
def test_finds_the_product_on_every_background(shots: dict[str, Shot]) -> None:
    scores = {name: iou(alpha > 0.5, truth) for name, (_, truth, _, alpha) in shots.items()}
    assert min(scores.values()) >= 0.8, scores
    assert np.mean(list(scores.values())) >= 0.9, scores


@pytest.mark.slow
def test_refinement_follows_the_edges(shots: dict[str, Shot]) -> None:
    for name, (_, truth, coarse, alpha) in shots.items():
        assert iou(alpha > 0.5, truth) >= iou(coarse > 0.5, truth) - 0.002, name
        # In a band around the true edge the served alpha is closer to the truth than the raw one.
        band = np.ones((9, 9), np.uint8)
        edge = cv2.dilate(truth.astype(np.uint8), band) > cv2.erode(truth.astype(np.uint8), band)
        error = [np.abs(a - truth)[edge].mean() for a in (coarse, alpha)]
        assert error[1] < error[0], (name, error)


@pytest.mark.slow
def test_mask_contract_for_odd_and_small_sizes(segmenter: U2NetSegmenter) -> None:
    rng = np.random.default_rng(3)
    for shape in [(301, 257), (120, 90)]:
        img = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
        alpha = segmenter.mask(img)
        assert alpha.shape == shape and alpha.dtype == np.float32
        assert 0 <= alpha.min() and alpha.max() <= 1


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["flat", "noise"])
def test_no_subject_means_no_subject_box(segmenter: U2NetSegmenter, kind: str) -> None:
    rng = np.random.default_rng(5)
    img = BACKGROUNDS[kind](SIZE, rng).astype(np.uint8)
    assert subject_box(segmenter.mask(img)) is None


@pytest.mark.slow
def test_concurrent_calls_match_sequential(segmenter: U2NetSegmenter) -> None:
    images = [composite(name, seed=7)[0][::2, ::2] for name in ("gradient", "blobs")]
    expected = [segmenter.mask(img) for img in images]
    with ThreadPoolExecutor(max_workers=len(images)) as pool:
        results = list(pool.map(segmenter.mask, images))
    for got, want in zip(results, expected, strict=True):
        np.testing.assert_array_equal(got, want)


@pytest.mark.slow
def test_high_quality_variant_runs_at_two_sizes() -> None:
    model = create_segmenter("u2netp-hq", threads=1)
    img, truth = composite("blobs", seed=2)
    assert iou(model.mask(img) > 0.5, truth) >= 0.9
