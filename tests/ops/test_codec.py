"""decode_image's verdict on each kind of upload, and the encoders' round trips."""

from __future__ import annotations

import io
import struct
import time
import zlib
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageFile, PngImagePlugin, WebPImagePlugin

from retouch.errors import (
    FileSizeTooLarge,
    InvalidParameter,
    MalformedImage,
    ResolutionTooHigh,
    UnsupportedImageFormat,
)
from retouch.ops.codec import ImageLimits, decode_image, encode_jpeg, encode_png, probe_image

LIMITS = ImageLimits()
RED = (255, 0, 0)


def _gradient(width: int = 96, height: int = 80) -> np.ndarray:
    """Smooth content, so lossy codecs stay within a small tolerance."""
    x = np.linspace(0, 255, width, dtype=np.uint8)[None, :].repeat(height, axis=0)
    y = np.linspace(0, 255, height, dtype=np.uint8)[:, None].repeat(width, axis=1)
    return np.dstack([x, y, np.full_like(x, 128)])


def _encode(image: Image.Image, fmt: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _png_header_only(width: int, height: int) -> bytes:
    """A valid PNG header claiming any size, with no pixel data behind it."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


@pytest.mark.parametrize(
    ("fmt", "mode", "options", "lossless"),
    [
        ("JPEG", "RGB", {"quality": 95}, False),
        ("PNG", "RGB", {}, True),
        ("PNG", "RGBA", {}, True),
        ("WEBP", "RGB", {"quality": 95}, False),
        ("WEBP", "RGBA", {"lossless": True}, True),
    ],
)
def test_decodes_accepted_formats(
    fmt: str, mode: str, options: dict[str, Any], lossless: bool
) -> None:
    source = Image.fromarray(_gradient()).convert(mode)
    if mode == "RGBA":
        source.putalpha(Image.linear_gradient("L").resize(source.size))
    expected = np.asarray(source)

    decoded = decode_image(_encode(source, fmt, **options), LIMITS)

    assert decoded.format == fmt
    assert decoded.pixels.dtype == np.uint8
    assert decoded.pixels.shape == expected.shape
    assert decoded.has_alpha is (mode == "RGBA")
    error = np.abs(decoded.pixels.astype(int) - expected).max()
    assert error == 0 if lossless else error < 16


@pytest.mark.parametrize("fmt", ["GIF", "BMP", "TIFF"])
def test_rejects_other_formats_by_name(fmt: str) -> None:
    data = _encode(Image.fromarray(_gradient()), fmt)
    with pytest.raises(UnsupportedImageFormat, match=f"^{fmt} images are not supported; send a"):
        decode_image(data, LIMITS)


def test_names_formats_pillow_cannot_open() -> None:
    heic = b"\x00\x00\x00\x18ftypheic" + bytes(64)
    with pytest.raises(UnsupportedImageFormat, match="HEIF/AVIF"):
        decode_image(heic, LIMITS)


@pytest.mark.parametrize(
    "data",
    [b"", np.random.default_rng(0).bytes(4096), b"\xff\xd8\xff\xe0" + bytes(8)],
    ids=["empty", "random", "jpeg-magic-only"],
)
def test_rejects_non_images_as_malformed(data: bytes) -> None:
    with pytest.raises(MalformedImage):
        decode_image(data, LIMITS)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_rejects_truncated_files(fmt: str) -> None:
    data = _encode(Image.fromarray(_gradient()), fmt)
    with pytest.raises(MalformedImage, match="corrupt or truncated"):
        decode_image(data[: len(data) // 2], LIMITS)


def test_checks_file_size_before_anything_else() -> None:
    with pytest.raises(FileSizeTooLarge, match="the largest file allowed is 1000 bytes"):
        decode_image(bytes(1001), ImageLimits(max_bytes=1000))


@pytest.mark.parametrize("size", [(7000, 10), (10, 7000), (20000, 20000)])
def test_refuses_oversized_images_from_the_header_alone(
    size: tuple[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    # No pixel data exists, so decoding would fail as malformed; and 20000x20000 is past Pillow's
    # own bomb limit, so Image.open would raise DecompressionBombError first.
    def no_load(self: Image.Image) -> None:
        pytest.fail("pixels were decoded")

    monkeypatch.setattr(PngImagePlugin.PngImageFile, "load", no_load)
    started = time.perf_counter()
    with pytest.raises(ResolutionTooHigh, match=f"^Image is {size[0]}x{size[1]} px; the largest"):
        decode_image(_png_header_only(*size), LIMITS)
    assert time.perf_counter() - started < 0.5


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"no image at all", MalformedImage),
        (_encode(Image.new("RGB", (80, 80)), "GIF"), UnsupportedImageFormat),
        (_png_header_only(7000, 10), ResolutionTooHigh),
        (_png_header_only(50, 200), InvalidParameter),
        (bytes(LIMITS.max_bytes + 1), FileSizeTooLarge),
    ],
)
def test_probe_refuses_what_decoding_would_without_decoding(
    data: bytes, error: type[Exception], monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_load(self: Image.Image) -> None:
        pytest.fail("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_load)
    with pytest.raises(error):
        probe_image(data, LIMITS)
    with pytest.raises(error):
        decode_image(data, LIMITS)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_probe_passes_a_good_image_from_its_header(
    fmt: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _encode(Image.fromarray(_gradient()), fmt)
    for opener in (ImageFile.ImageFile, WebPImagePlugin.WebPImageFile):
        monkeypatch.setattr(opener, "load", lambda self: pytest.fail("pixels were decoded"))
    probe_image(data, LIMITS)


def test_refuses_images_below_the_minimum_side() -> None:
    data = _encode(Image.new("RGB", (50, 200)), "PNG")
    with pytest.raises(InvalidParameter, match="^Image is 50x200 px; the smallest side allowed"):
        decode_image(data, LIMITS)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_applies_exif_orientation(fmt: str) -> None:
    stored = Image.new("RGB", (200, 100), (0, 0, 255))
    stored.paste(RED, (0, 0, 40, 40))  # top-left as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90° clockwise

    pixels = decode_image(_encode(stored, fmt, exif=exif.tobytes(), quality=95), LIMITS).pixels

    assert pixels.shape == (200, 100, 3)
    assert np.abs(pixels[10, -10].astype(int) - RED).max() < 16  # now top-right
    assert np.abs(pixels[10, 10].astype(int) - (0, 0, 255)).max() < 16


def test_palette_with_transparency_becomes_rgba() -> None:
    palette = Image.new("P", (64, 64), 1)
    palette.putpalette([0, 0, 0, *RED] + [0] * 762)
    palette.paste(0, (0, 0, 32, 64))

    decoded = decode_image(_encode(palette, "PNG", transparency=0), LIMITS)

    assert decoded.has_alpha
    assert decoded.pixels[0, 0, 3] == 0
    assert tuple(decoded.pixels[0, 63]) == (*RED, 255)


def test_scales_16_bit_grey_to_8_bit() -> None:
    values = np.linspace(0, 65535, 64 * 64).astype(np.uint16).reshape(64, 64)
    decoded = decode_image(_encode(Image.fromarray(values), "PNG"), LIMITS)

    assert decoded.pixels.shape == (64, 64, 3)
    assert decoded.pixels.max() == 255  # Pillow's convert("L") would clip nearly all to 255
    np.testing.assert_array_equal(decoded.pixels[..., 0], values >> 8)


def test_converts_cmyk_jpeg_to_rgb() -> None:
    cmyk = Image.new("CMYK", (64, 64), (0, 255, 255, 0))  # red ink
    decoded = decode_image(_encode(cmyk, "JPEG", quality=95), LIMITS)

    assert decoded.pixels.shape == (64, 64, 3)
    assert np.abs(decoded.pixels[32, 32].astype(int) - RED).max() < 16


def test_keeps_a_declared_alpha_channel_even_when_opaque() -> None:
    opaque = Image.fromarray(_gradient()).convert("RGBA")
    assert decode_image(_encode(opaque, "PNG"), LIMITS).has_alpha


def test_decodes_the_first_frame_of_an_animation() -> None:
    frames = [Image.new("RGB", (64, 64), colour) for colour in (RED, (0, 0, 255))]
    data = _encode(frames[0], "WEBP", save_all=True, append_images=frames[1:], lossless=True)
    assert tuple(decode_image(data, LIMITS).pixels[0, 0]) == RED


@pytest.mark.parametrize("channels", [3, 4])
def test_png_round_trip_is_exact(channels: int) -> None:
    pixels = np.random.default_rng(1).integers(0, 256, (70, 90, channels), dtype=np.uint8)
    decoded = decode_image(encode_png(pixels), LIMITS)
    assert decoded.format == "PNG"
    np.testing.assert_array_equal(decoded.pixels, pixels)


def test_jpeg_round_trip_keeps_colours_in_order() -> None:
    pixels = _gradient()
    decoded = decode_image(encode_jpeg(pixels, quality=95), LIMITS)
    assert decoded.format == "JPEG"
    assert np.abs(decoded.pixels.astype(int) - pixels).max() < 16


def test_encoders_refuse_the_wrong_layout() -> None:
    with pytest.raises(ValueError, match="C in \\(3,\\)"):
        encode_jpeg(np.zeros((64, 64, 4), np.uint8))
    with pytest.raises(ValueError, match="uint16"):
        encode_png(np.zeros((64, 64, 3), np.uint16))
