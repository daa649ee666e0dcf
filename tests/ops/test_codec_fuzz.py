"""Fuzzing decode_image, where untrusted bytes meet C decoders: whatever arrives, the answer is
pixels within the limits or a 400, quickly and without a large allocation.

Bounded and derandomized so CI runs the same ~300 examples in a few seconds; bench/fuzz.py runs
the same properties for longer.
"""

from __future__ import annotations

import struct
import time
import zlib

import pytest
from hypothesis import HealthCheck, example, given, settings
from PIL import ImageFile, WebPImagePlugin

from retouch.errors import MalformedImage, ResolutionTooHigh
from retouch.ops.codec import ImageLimits, decode_image, probe_image
from tests.utils import fuzzing
from tests.utils.fuzzing import CODEC_LIMITS, check_decode

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.filterwarnings(*fuzzing.ignored_warning_specs()),
]

FUZZ = settings(
    deadline=None,  # check_decode bounds each call itself, generously for a busy machine
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture
def rss_ceiling() -> float:
    """Relative to the high-water mark so far: other tests in the session may have raised it."""
    return fuzzing.peak_rss_mib() + fuzzing.RSS_HEADROOM_MIB


@settings(FUZZ, max_examples=60)
@given(data=fuzzing.arbitrary_bytes)
@example(data=b"\x89PNG\r\n\x1a\n")
@example(data=b"\xff\xd8\xff")
@example(data=b"RIFF\x04\x00\x00\x00WEBP")
def test_arbitrary_bytes_are_refused_as_a_400(data: bytes, rss_ceiling: float) -> None:
    check_decode(data, CODEC_LIMITS, rss_ceiling)


@settings(FUZZ, max_examples=200)
@given(data=fuzzing.mutated_files())
def test_corrupted_files_decode_within_limits_or_are_refused(
    data: bytes, rss_ceiling: float
) -> None:
    check_decode(data, CODEC_LIMITS, rss_ceiling)


def test_the_seeds_decode() -> None:
    """Guards the fuzzers above: mutations of files that never decoded would test little."""
    for seed in fuzzing.seed_files():
        assert check_decode(seed, CODEC_LIMITS, float("inf")) == "decoded"


@settings(FUZZ, max_examples=60)
@given(data=fuzzing.oversized_headers())
def test_oversized_headers_are_refused_before_any_pixel_is_decoded(
    data: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_load(self: ImageFile.ImageFile) -> None:
        pytest.fail("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_load)
    monkeypatch.setattr(WebPImagePlugin.WebPImageFile, "load", no_load)
    started = time.monotonic()
    # A header that contradicts the rest of the file may be refused as corrupt instead, which is
    # as good: either way before load().
    with pytest.raises((ResolutionTooHigh, MalformedImage)):
        decode_image(data, CODEC_LIMITS)
    assert time.monotonic() - started < 1


def test_a_png_bomb_is_refused_before_its_pixels_exist() -> None:
    """100000 x 100000 RGB would be 30 GB; its compressed zeros are about 30 KB. Production
    limits, so the default configuration is what is proven."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + crc

    side = 100_000
    rows = zlib.compress(bytes(1 + 3 * side) * 100, 9)  # the first 100 rows, all zero
    bomb = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", rows)
        + chunk(b"IEND", b"")
    )
    before = fuzzing.peak_rss_mib()
    started = time.monotonic()
    with pytest.raises(ResolutionTooHigh, match="^Image is 100000x100000 px"):
        decode_image(bomb, ImageLimits())
    assert time.monotonic() - started < 1
    assert fuzzing.peak_rss_mib() - before < 64


@pytest.mark.parametrize(
    "junk", [b"", b"\x00junk\x00", b"\xff\x00\xff\xd0"], ids=["plain", "junk", "stuffing"]
)
def test_a_progressive_jpeg_scan_bomb_is_refused_from_its_header(
    junk: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """200,000 scans, as in the wild, would take minutes to decode here (about a millisecond
    a scan at 1024 px). Junk between the copies, which libjpeg skips, hides none of them."""
    bomb = fuzzing.jpeg_scan_bomb(66_664, junk=junk)

    def no_load(self: ImageFile.ImageFile) -> None:
        pytest.fail("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_load)
    started = time.monotonic()
    for check in (probe_image, decode_image):
        with pytest.raises(MalformedImage, match="more than 100 scans"):
            check(bomb, ImageLimits())
    assert time.monotonic() - started < 0.5


def test_a_progressive_jpeg_at_the_scan_limit_decodes() -> None:
    at_limit = fuzzing.jpeg_scan_bomb(30)  # 100 scans
    probe_image(at_limit, ImageLimits())
    assert decode_image(at_limit, ImageLimits()).pixels.shape == (1024, 1024, 3)
    with pytest.raises(MalformedImage):
        probe_image(fuzzing.jpeg_scan_bomb(31), ImageLimits())
