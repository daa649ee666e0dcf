"""The u2netp segmenter on synthetic product shots whose true mask is known."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest

from retouch.engines.segmenter import U2NetSegmenter, create_segmenter
from retouch.ops.cutout import subject_box
from retouch.stages import collect
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


@pytest.mark.slow
def test_a_lone_mask_uses_every_thread_and_concurrent_ones_one_each() -> None:
    model = U2NetSegmenter(threads=1, lone_threads=2)
    img, truth = composite("gradient")
    with collect() as times:
        alpha = model.mask(img)
    assert times.threads["model"] == 2
    assert iou(alpha > 0.5, truth) >= 0.9

    # Hold one call inside the model; a second call meanwhile must get the one-thread session.
    inside, release = threading.Event(), threading.Event()
    lone = model.lone_model

    class Held:
        runtime, threads = lone.runtime, lone.threads

        def __call__(self, x: np.ndarray) -> np.ndarray:
            inside.set()
            release.wait(30)
            return lone(x)

    model.lone_model = Held()
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(model.mask, img)
        assert inside.wait(30)
        with collect() as times:
            second = model.mask(img)
        release.set()
        np.testing.assert_array_equal(first.result(), alpha)
    assert times.threads["model"] == 1
    assert iou(second > 0.5, truth) >= 0.9


def test_unknown_runtime_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="onnxruntime, openvino, openvino-bf16"):
        create_segmenter("u2netp", threads=1, runtime="tensorflow")


@pytest.mark.slow
@pytest.mark.parametrize("runtime", ["openvino", "openvino-bf16"])
def test_openvino_finds_the_same_subjects(
    runtime: str, shots: dict[str, Shot], caplog: pytest.LogCaptureFixture
) -> None:
    """f32 must match ONNX Runtime; bf16 (f32 on CPUs without it) may differ a little."""
    pytest.importorskip("openvino")
    with caplog.at_level(logging.INFO):
        model = create_segmenter("u2netp", threads=1, lone_threads=2, runtime=runtime)
    assert isinstance(model, U2NetSegmenter)
    assert model.runtime in {"openvino-f32", "openvino-bf16"}
    assert f"on {model.runtime}" in caplog.text  # the choice is logged at start
    for name, (img, truth, _, served) in shots.items():
        alpha = model.mask(img)
        assert alpha.shape == served.shape and alpha.dtype == np.float32
        if model.runtime == "openvino-f32":
            assert np.abs(alpha - served).max() < 0.02, name
        assert iou(alpha > 0.5, truth) >= iou(served > 0.5, truth) - 0.02, name
