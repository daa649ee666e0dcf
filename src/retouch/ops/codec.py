"""Bytes to pixels and back, for the three formats the API accepts: JPEG, PNG and WebP.

Decoding is where untrusted bytes meet C decoders, so the order of checks matters: file size
first, then the format by magic number, then the dimensions from the header alone (and a JPEG's
scan count, from its marker segments), and only then the pixels. Each header is parsed by its
Pillow plugin class directly rather than `Image.open`, which would run Pillow's process-wide
decompression-bomb check (a warning, or an error past twice `MAX_IMAGE_PIXELS`) before we could
apply our own, smaller, per-call limit.

Alpha policy: an image keeps an alpha channel when its file declares one (RGBA/LA/PA modes or a
tRNS colour key), even when every pixel is opaque. That mirrors the spec's "input has an alpha
channel" rules literally and costs no pass over the pixels; callers that care whether the alpha
is actually used can check `pixels[..., 3].min() < 255`.
"""

from __future__ import annotations

import io
import re
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, NoReturn

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image, ImageFile, ImageOps, JpegImagePlugin, PngImagePlugin, WebPImagePlugin

from retouch.errors import (
    FileSizeTooLarge,
    InvalidParameter,
    MalformedImage,
    ResolutionTooHigh,
    UnsupportedImageFormat,
)

Pixels = npt.NDArray[np.uint8]

_ACCEPTED = "send a JPEG, PNG or WebP image"

# JpegImageFile (not Pillow's jpeg_factory) also reads MPO camera files: the first picture only.
_OPENERS: dict[str, Callable[[IO[bytes]], ImageFile.ImageFile]] = {
    "JPEG": JpegImagePlugin.JpegImageFile,
    "PNG": PngImagePlugin.PngImageFile,
    "WEBP": WebPImagePlugin.WebPImageFile,
}

_LABELS = {"JPEG": "JPEG", "PNG": "PNG", "WEBP": "WebP"}

# Formats Pillow cannot open but clients commonly send; naming them beats "malformed".
_FOREIGN_SIGNATURES: tuple[tuple[str, Callable[[bytes], bool]], ...] = (
    ("HEIF/AVIF", lambda d: d[4:8] == b"ftyp" and d[8:12] in {b"heic", b"heix", b"mif1", b"avif"}),
    ("JPEG XL", lambda d: d.startswith((b"\xff\x0a", b"\x00\x00\x00\x0cJXL \r\n\x87\n"))),
    ("SVG", lambda d: d.lstrip()[:5] in {b"<svg ", b"<?xml"}),
)

# What Pillow raises on hostile or truncated input; anything else is a bug worth a 500.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error, zlib.error)

# Level 1 with zlib's RLE strategy and the Paeth filter, measured with cv2 4.14 / libpng 1.6.58 on
# a 2160x1431 photo (RGBA cutout): 4.91 MB in 95 ms (2.19 MB, 61 ms). Plain level 1 gave 5.61 MB
# in 159 ms, level 6 5.40 MB in 417 ms, cv2's implicit default 5.51 MB in 67 ms. Named explicitly
# because OpenCV has changed its PNG defaults between releases.
_PNG_PARAMS = [
    cv2.IMWRITE_PNG_COMPRESSION, 1,
    cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE,
    cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_PAETH,
]  # fmt: skip


# libjpeg's standard progression writes 10 scans for a colour image (6 for grey), and encoders
# that tune their scan script (mozjpeg) stay near that; a sequential JPEG has one scan per
# component at most. 100 is far above any of them, yet bounds what a file can cost to about ten
# times the scan decoding of an ordinary progressive JPEG of its size.
_MAX_JPEG_SCANS = 100
# A file is a few dozen segments (APPn, DQT, SOF, a DHT per scan); this bounds the walk itself.
_MAX_JPEG_SEGMENTS = 2000
# 0xFF, then a marker code: not 0x00 (a stuffed 0xFF in entropy-coded data), not a restart
# marker (0xD0-0xD7, inside a scan), not 0xFF (fill bytes before the real code).
_JPEG_MARKER = re.compile(rb"\xff[\x01-\xcf\xd8-\xfe]")
_SOS, _EOI = 0xDA, 0xD9
_STANDALONE = frozenset({0x01, 0xD8})  # TEM, SOI


@dataclass(frozen=True)
class ImageLimits:
    """Input limits from the spec (§1.5); endpoints such as outpaint override some of them."""

    max_bytes: int = 25 * 1024 * 1024
    min_side: int = 64
    max_side: int = 6000


@dataclass(frozen=True)
class DecodedImage:
    """Upright 8-bit pixels (HxWx3 RGB or HxWx4 RGBA, possibly read-only) and the source format."""

    pixels: Pixels
    format: str

    @property
    def has_alpha(self) -> bool:
        return bool(self.pixels.shape[2] == 4)


def probe_image(data: bytes, limits: ImageLimits) -> None:
    """Everything ``decode_image`` checks before it touches a pixel: size, format, header and
    dimensions. Cheap (the header only), so callers can refuse a bad upload before it waits
    for a turn at the CPU."""
    _open_header(data, limits)[1].close()


def decode_image(data: bytes, limits: ImageLimits) -> DecodedImage:
    """Decode a JPEG, PNG or WebP upload, raising the API's image errors for anything else."""
    fmt, image = _open_header(data, limits)
    with image:
        try:
            image.load()
            ImageOps.exif_transpose(image, in_place=True)
            pixels = _to_rgb_or_rgba(image)
        except _DECODE_ERRORS as exc:
            raise MalformedImage(f"The {_LABELS[fmt]} image data is corrupt or truncated") from exc
    return DecodedImage(pixels=pixels, format=fmt)


def _open_header(data: bytes, limits: ImageLimits) -> tuple[str, ImageFile.ImageFile]:
    """The upload's format, and the upload opened (header parsed, no pixels decoded) within
    ``limits``."""
    if len(data) > limits.max_bytes:
        raise FileSizeTooLarge(
            f"The image is {_describe_size(len(data))}; "
            f"the largest file allowed is {_describe_size(limits.max_bytes)}"
        )
    if not data:
        raise MalformedImage("The image is empty (0 bytes)")
    fmt = _sniff(data)
    if fmt is None:
        _reject_foreign(data)
    try:
        image = _OPENERS[fmt](io.BytesIO(data))
    except _DECODE_ERRORS as exc:
        raise MalformedImage(f"The {_LABELS[fmt]} header is corrupt or truncated") from exc
    try:
        # Both limits apply to either side, so the EXIF rotation applied on decoding cannot
        # change the verdict; checking before load() keeps a bomb's pixels from being allocated.
        _check_dimensions(*image.size, limits)
        if fmt == "JPEG":
            _check_jpeg_scans(data)
    except BaseException:
        image.close()
        raise
    return fmt, image


def encode_png(pixels: Pixels) -> bytes:
    """Encode RGB or RGBA pixels as PNG with the fast settings measured above."""
    conversion = {3: cv2.COLOR_RGB2BGR, 4: cv2.COLOR_RGBA2BGRA}[_channels(pixels, (3, 4))]
    return _imencode(".png", cv2.cvtColor(pixels, conversion), _PNG_PARAMS)


def encode_jpeg(rgb: Pixels, quality: int = 90) -> bytes:
    """Encode RGB pixels as JPEG.

    RGBA is refused rather than flattened: the background colour is the caller's decision, and a
    silent white fill would hide a cut-out sent down the wrong path.
    """
    _channels(rgb, (3,))
    params = [cv2.IMWRITE_JPEG_QUALITY, quality]
    return _imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)


def _sniff(data: bytes) -> str | None:
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


def _reject_foreign(data: bytes) -> NoReturn:
    """Tell a format we don't take (unsupported) apart from bytes that are no image (malformed)."""
    name = next((name for name, matches in _FOREIGN_SIGNATURES if matches(data)), None)
    if name is None:
        try:
            with Image.open(io.BytesIO(data)) as image:
                name = image.format
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            # Pillow recognised the format before judging its size: an image, just not one we take.
            raise UnsupportedImageFormat(f"This format is not supported; {_ACCEPTED}") from exc
        except Exception:  # naming the format is best effort; junk is "malformed"
            name = None
    if name is None:
        raise MalformedImage(f"The file is not a recognisable image; {_ACCEPTED}")
    raise UnsupportedImageFormat(f"{name} images are not supported; {_ACCEPTED}")


def _check_dimensions(width: int, height: int, limits: ImageLimits) -> None:
    if max(width, height) > limits.max_side:
        raise ResolutionTooHigh(
            f"Image is {width}x{height} px; the largest side allowed is {limits.max_side} px"
        )
    if min(width, height) < limits.min_side:
        raise InvalidParameter(
            f"Image is {width}x{height} px; the smallest side allowed is {limits.min_side} px"
        )


def _check_jpeg_scans(data: bytes) -> None:
    """Refuse a JPEG with more scans than any encoder writes, before libjpeg decodes them.

    Each scan of a progressive JPEG is a pass over the whole coefficient buffer, however few
    bytes it takes: a 1024 px image repeating one 12-byte refinement scan 200,000 times is
    2.4 MB and costs seconds of CPU per 10,000 scans. libjpeg-turbo has this guard
    (``djpeg -maxscans``, TurboJPEG's ``TJPARAM_SCANLIMIT``), but Pillow does not expose it.

    The walk follows libjpeg's own marker reading: a segment is skipped by its length, and
    the next marker is the next 0xFF followed by anything but a stuffed zero, a restart marker
    or more fill bytes, wherever it is. So garbage between segments, which libjpeg skips with a
    warning, cannot hide a scan from the count; the walk ends at EOI, where libjpeg stops.
    """
    scans = segments = 0
    position = 2  # after SOI
    while (marker := _JPEG_MARKER.search(data, position)) is not None:
        code = data[marker.end() - 1]
        if code == _EOI:
            return
        segments += 1
        if segments > _MAX_JPEG_SEGMENTS:
            raise MalformedImage(f"The JPEG has more than {_MAX_JPEG_SEGMENTS} marker segments")
        if code == _SOS:
            scans += 1
            if scans > _MAX_JPEG_SCANS:
                raise MalformedImage(
                    f"The JPEG has more than {_MAX_JPEG_SCANS} scans; encoders write at most "
                    "a dozen or so"
                )
        # SOI and TEM stand alone; every other marker here starts a segment with a length.
        # The entropy-coded data after a scan's header is crossed by the next search.
        length = 0 if code in _STANDALONE else int.from_bytes(data[marker.end() : marker.end() + 2])
        position = marker.end() + length


def _to_rgb_or_rgba(image: Image.Image) -> Pixels:
    if image.mode.startswith("I;16"):
        return _from_16bit_grey(image)
    # has_transparency_data covers alpha modes and tRNS colour keys on P, L and RGB images.
    target = "RGBA" if image.has_transparency_data else "RGB"
    return np.asarray(image if image.mode == target else image.convert(target))


def _from_16bit_grey(image: Image.Image) -> Pixels:
    """Scale 16-bit grey PNGs down; Pillow's convert("L") would clip everything above 255."""
    values = np.asarray(image)
    grey = (values >> 8).astype(np.uint8)
    channels = [grey, grey, grey]
    if "transparency" in image.info:  # a 16-bit tRNS key must be matched before scaling
        channels.append(np.where(values == image.info["transparency"], 0, 255).astype(np.uint8))
    return np.dstack(channels)


def _channels(pixels: Pixels, allowed: tuple[int, ...]) -> int:
    """Guard the encoders against programming errors; these are never the client's fault."""
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] not in allowed:
        raise ValueError(
            f"expected uint8 HxWxC pixels with C in {allowed}, got {pixels.dtype} {pixels.shape}"
        )
    return int(pixels.shape[2])


def _imencode(extension: str, bgr: cv2.typing.MatLike, params: list[int]) -> bytes:
    ok, encoded = cv2.imencode(extension, bgr, params)
    if not ok:
        raise RuntimeError(f"OpenCV could not encode a {bgr.shape} image as {extension}")
    return encoded.tobytes()


def _describe_size(n_bytes: int) -> str:
    return f"{n_bytes / 2**20:.3g} MB" if n_bytes >= 2**20 else f"{n_bytes} bytes"
