"""Strategies and properties for fuzzing the two places untrusted input is parsed: the image
decoder and the request parser. The bounded tests (tests/ops/test_codec_fuzz.py,
tests/api/test_parse_fuzz.py) and the long run (bench/fuzz.py) share them, so a failure the long
run finds is reproduced by the same property in a test.

Mutations aim at the fields decoders trust: declared dimensions (PNG IHDR, JPEG SOF, WebP VP8X,
VP8 and VP8L headers), chunk and segment lengths, CRCs. Random bit flips alone rarely get past a
PNG CRC or a JPEG marker, so most examples lie in a structured way.
"""

from __future__ import annotations

import functools
import io
import json
import operator
import resource
import struct
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np
from hypothesis import strategies as st
from PIL import Image
from pydantic import BaseModel

from retouch import schemas
from retouch.errors import RetouchError
from retouch.ops.codec import ImageLimits, decode_image

# Smaller than the production limits so that a mutation declaring, say, 6000x6000 is refused
# rather than decoded at 100+ MB a time; the code paths are the same.
CODEC_LIMITS = ImageLimits(max_bytes=2 * 2**20, min_side=16, max_side=1024)
# A hang is minutes; a busy 2-core CI machine decodes any of these inputs in well under this.
SECONDS_PER_DECODE = 5.0
# The decoded pixels are at most 1024x1024x4 bytes (4 MiB) plus Pillow's copies; a bomb that got
# through would push the process's high-water mark by hundreds of MB at least.
RSS_HEADROOM_MIB = 384

# Warnings the fuzzers provoke that are not failures of ours, as (message regex, category, module
# regex). Outside tests each is at most a line on stderr (ResourceWarning not even that); the
# suite's `filterwarnings = error` would turn them into exceptions no server ever sees.
# * Pillow's EXIF parser (TIFF's, reused for the EXIF blocks of JPEG, PNG and WebP) warns about
#   corrupt or truncated metadata and carries on; decode_image then answers pixels or a 400.
# * Starlette (1.10) does not close the spooled file of a part the body ends inside of; reference
#   counting closes it as request.form() returns, with a ResourceWarning.
IGNORED_WARNINGS: tuple[tuple[str, type[Warning], str], ...] = (
    ("", UserWarning, r"PIL\.TiffImagePlugin"),
    (r"Unclosed file <tempfile\.SpooledTemporaryFile", ResourceWarning, ""),
)


def ignored_warning_specs() -> list[str]:
    """IGNORED_WARNINGS as filter specs for ``pytest.mark.filterwarnings``."""
    return [
        f"ignore:{message}:{category.__name__}:{module}"
        for message, category, module in IGNORED_WARNINGS
    ]


# Every error code the README's errors table (and its idempotency section) documents.
DOCUMENTED_ERROR_CODES = frozenset(
    {
        "invalid_request_body",
        "missing_parameter",
        "invalid_parameter",
        "unsupported_content_type",
        "malformed_image",
        "unsupported_image_format",
        "file_size_too_large",
        "resolution_too_high",
        "unknown_foreground",
        "invalid_auth_token",
        "insufficient_api_credits",
        "not_found",
        "method_not_allowed",
        "request_timeout",
        "rate_limit_exceeded",
        "idempotency_key_in_use",
        "idempotency_key_reused",
    }
)


# --- seed images ---------------------------------------------------------------------------------


def _save(image: Image.Image, fmt: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _picture(width: int, height: int) -> Image.Image:
    """Noise over a gradient: compresses like a photo, so every codec path has work to do."""
    rng = np.random.default_rng(width * 1000 + height)
    ramp = np.linspace(0, 200, width, dtype=np.float32)[None, :, None]
    pixels = ramp + rng.normal(0, 20, (height, width, 3)).astype(np.float32)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


@functools.cache
def seed_files(width: int = 48, height: int = 40) -> tuple[bytes, ...]:
    """Valid files covering each mode and layout the decoder handles differently."""
    rgb = _picture(width, height)
    rgba = rgb.copy()
    rgba.putalpha(Image.linear_gradient("L").resize(rgb.size))
    palette = rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    grey16 = Image.fromarray(np.asarray(rgb.convert("L"), np.uint16) * 257)
    exif = Image.Exif()
    exif[0x0112] = 6
    frames = [rgb, rgb.transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    return (
        _save(rgb, "JPEG", quality=80),
        _save(rgb, "JPEG", quality=80, progressive=True, exif=exif.tobytes()),
        _save(rgb.convert("L"), "JPEG"),
        _save(rgb.convert("CMYK"), "JPEG"),
        _save(rgb, "PNG"),
        _save(rgba, "PNG", optimize=True),
        _save(palette, "PNG", transparency=0),
        _save(rgb.convert("LA"), "PNG"),
        _save(rgb.convert("1"), "PNG"),
        _save(grey16, "PNG"),
        _save(rgb, "PNG", exif=exif.tobytes()),
        _save(rgb, "WEBP", quality=70),
        _save(rgba, "WEBP", lossless=True),
        _save(rgba, "WEBP", quality=70),
        _save(rgb, "WEBP", quality=70, exif=exif.tobytes()),
        _save(frames[0], "WEBP", save_all=True, append_images=frames[1:], lossless=True),
    )


def jpeg_scan_bomb(repeats: int, *, side: int = 1024, junk: bytes = b"") -> bytes:
    """A real progressive JPEG of a flat ``side`` px square with ``10 + 3 * repeats`` scans.

    libjpeg's standard progression ends with three refinement scans (Cr, Cb, then Y, each after
    its Huffman table), a few bytes each for a flat picture; they are written again ``repeats``
    times, ``junk`` before each copy. libjpeg decodes every copy (warning of a bogus progression,
    and of the junk's "extraneous bytes"), each a pass over every block of the image.
    """
    data = _save(Image.new("RGB", (side, side), (128, 128, 128)), "JPEG", progressive=True)
    body, end = data[:-2], data[-2:]
    assert end == b"\xff\xd9" and body.count(b"\xff\xda") == 10
    tail = body
    for _ in range(3):
        tail = tail[: tail.rindex(b"\xff\xc4")]
    return body + (junk + body[len(tail) :]) * repeats + end


# --- where the declared sizes and lengths live ---------------------------------------------------


def _png_chunks(data: bytes) -> Iterator[int]:
    """Offsets of each chunk's length field."""
    offset = 8
    while offset + 12 <= len(data):
        yield offset
        (length,) = struct.unpack_from(">I", data, offset)
        offset += 12 + length


def _riff_chunks(data: bytes) -> Iterator[int]:
    """Offsets of each WebP chunk's FourCC."""
    offset = 12
    while offset + 8 <= len(data):
        yield offset
        (size,) = struct.unpack_from("<I", data, offset + 4)
        offset += 8 + size + (size & 1)


def _jpeg_segments(data: bytes) -> Iterator[tuple[int, int]]:
    """(offset of the marker, marker byte) for each length-prefixed segment before the scan."""
    offset = 2
    while offset + 4 <= len(data) and data[offset] == 0xFF:
        marker = data[offset + 1]
        yield offset, marker
        if marker == 0xDA:  # entropy-coded data follows; no more length fields to find
            return
        (length,) = struct.unpack_from(">H", data, offset + 2)
        offset += 2 + length


def _sof_offsets(data: bytes) -> list[int]:
    frames = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
    return [offset for offset, marker in _jpeg_segments(data) if marker in frames]


def set_declared_size(data: bytes, width: int, height: int, *, fix_crc: bool = True) -> bytes:
    """``data`` with the header claiming ``width`` x ``height``, clamped to the field's range;
    the pixel data stays as it was (a lie about the size)."""
    out = bytearray(data)
    if data.startswith(b"\x89PNG") and len(data) >= 33:
        struct.pack_into(">II", out, 16, width % 2**32, height % 2**32)
        if fix_crc:
            struct.pack_into(">I", out, 29, zlib.crc32(bytes(out[12:29])))
    elif data.startswith(b"\xff\xd8"):
        for offset in _sof_offsets(data):
            if offset + 9 <= len(data):
                struct.pack_into(">HH", out, offset + 5, height % 2**16, width % 2**16)
    elif data[8:12] == b"WEBP":
        for offset in _riff_chunks(data):
            kind, body = data[offset : offset + 4], offset + 8
            if kind == b"VP8X" and body + 10 <= len(data):
                out[body + 4 : body + 7] = ((width - 1) % 2**24).to_bytes(3, "little")
                out[body + 7 : body + 10] = ((height - 1) % 2**24).to_bytes(3, "little")
            elif kind == b"VP8 " and body + 10 <= len(data):
                struct.pack_into("<HH", out, body + 6, width % 2**14, height % 2**14)
            elif kind == b"VP8L" and body + 5 <= len(data):
                (bits,) = struct.unpack_from("<I", data, body + 1)
                bits = (bits & ~0xFFFFFFF) | ((width - 1) % 2**14) | ((height - 1) % 2**14) << 14
                struct.pack_into("<I", out, body + 1, bits)
    return bytes(out)


# --- mutations -----------------------------------------------------------------------------------

Mutation = Callable[[bytes], bytes]

_declared_sides = st.one_of(
    st.integers(0, 80),
    st.sampled_from([CODEC_LIMITS.max_side, CODEC_LIMITS.max_side + 1, 6000, 6001, 65535]),
    st.sampled_from([2**14 - 1, 2**16, 2**24 - 1, 2**24, 2**31 - 1, 2**32 - 1, 100_000]),
    st.integers(0, 2**32 - 1),
)


@st.composite
def _mutation(draw: st.DrawFn, size: int) -> Mutation:
    """One corruption of a file of ``size`` bytes; positions are drawn against that size."""
    at = draw(st.integers(0, max(size - 1, 0)))
    kind = draw(
        st.sampled_from(
            ["flip", "overwrite", "truncate", "insert", "delete", "size", "length", "crc"]
        )
    )
    if kind == "flip":
        bit = draw(st.integers(0, 7))
        return lambda d: d[:at] + bytes([d[at] ^ (1 << bit)]) + d[at + 1 :] if at < len(d) else d
    if kind == "overwrite":
        junk = draw(st.binary(min_size=1, max_size=8))
        return lambda d: d[:at] + junk + d[at + len(junk) :]
    if kind == "truncate":
        return lambda d: d[:at]
    if kind == "insert":
        junk = draw(st.binary(min_size=1, max_size=64))
        return lambda d: d[:at] + junk + d[at:]
    if kind == "delete":
        count = draw(st.integers(1, 64))
        return lambda d: d[:at] + d[at + count :]
    if kind == "size":
        width, height = draw(_declared_sides), draw(_declared_sides)
        fix_crc = draw(st.booleans())
        return lambda d: set_declared_size(d, width, height, fix_crc=fix_crc)
    pick = draw(st.integers(0, 2**16))
    if kind == "length":
        value = draw(st.one_of(st.integers(0, 2**16), st.integers(0, 2**32 - 1)))
        return lambda d: _lie_about_a_length(d, pick, value)
    return lambda d: _break_a_crc(d, pick)


def _lie_about_a_length(data: bytes, pick: int, value: int) -> bytes:
    out = bytearray(data)
    if data.startswith(b"\x89PNG"):
        offsets = list(_png_chunks(data))
        if offsets:
            struct.pack_into(">I", out, offsets[pick % len(offsets)], value)
    elif data.startswith(b"\xff\xd8"):
        segments = list(_jpeg_segments(data))  # each has its length field inside the data
        if segments:
            struct.pack_into(">H", out, segments[pick % len(segments)][0] + 2, value % 2**16)
    elif data[8:12] == b"WEBP":
        offsets = [4, *(offset + 4 for offset in _riff_chunks(data))]  # the RIFF size, too
        struct.pack_into("<I", out, offsets[pick % len(offsets)], value)
    return bytes(out)


def _break_a_crc(data: bytes, pick: int) -> bytes:
    if not data.startswith(b"\x89PNG"):
        return data
    offsets = list(_png_chunks(data))
    if not offsets:
        return data
    offset = offsets[pick % len(offsets)]
    (length,) = struct.unpack_from(">I", data, offset)
    crc_at = offset + 8 + length
    out = bytearray(data)
    if crc_at + 4 <= len(out):
        out[crc_at] ^= 0xFF
    return bytes(out)


def seeds(
    size: tuple[int, int] = (48, 40), keep: Callable[[bytes], bool] = lambda _: True
) -> st.SearchStrategy[bytes]:
    """One of the seed files of ``size`` (width, height) that ``keep`` accepts.

    Drawn by index: Hypothesis puts a strategy's arguments in its messages, and sampling the
    files themselves would make those hundreds of kB long."""
    files = seed_files(*size)
    return st.sampled_from([i for i, data in enumerate(files) if keep(data)]).map(
        lambda i: seed_files(*size)[i]
    )


@st.composite
def mutated_files(draw: st.DrawFn, seed_size: tuple[int, int] = (48, 40)) -> bytes:
    """A seed file of ``seed_size`` with one to four corruptions applied in turn."""
    data = draw(seeds(seed_size))
    for _ in range(draw(st.integers(1, 4))):
        data = draw(_mutation(len(data)))(data)
    return data


# Bytes that start like an image (or like the formats the decoder names) but go nowhere.
_PREFIXES = [
    b"",
    b"\xff\xd8\xff",
    b"\x89PNG\r\n\x1a\n",
    b"RIFF\x00\x00\x00\x00WEBP",
    b"RIFF\xff\xff\xff\xffWEBPVP8X",
    b"GIF89a",
    b"BM",
    b"II*\x00",
    b"\x00\x00\x00\x18ftypheic",
    b"\xff\x0a",
    b"<svg ",
    b"\x00\x00\x01\x00",
]
arbitrary_bytes = st.builds(operator.add, st.sampled_from(_PREFIXES), st.binary())


def oversized_headers(limits: ImageLimits = CODEC_LIMITS) -> st.SearchStrategy[bytes]:
    """Valid seeds re-declared with at least one side past ``limits.max_side``: decompression
    bombs in miniature, each only a few hundred bytes long."""
    huge = st.integers(limits.max_side + 1, 2**14 - 1) | st.sampled_from([2**14 - 1, 65535])
    any_side = st.integers(1, 2**14 - 1)
    sides = st.one_of(st.tuples(huge, any_side), st.tuples(any_side, huge), st.tuples(huge, huge))
    # The VP8/VP8L headers hold 14 bits, the JPEG SOF 16; IHDR and VP8X far more, so those also
    # get sizes only they can express (a still WebP's canvas must match its frame, so of the
    # WebPs only the animation).
    wide = st.tuples(st.integers(2**16, 2**24), st.integers(1, 2**24))
    takes_wide = seeds(keep=lambda s: s.startswith(b"\x89PNG") or b"ANIM" in s[:64])
    return st.one_of(
        st.builds(lambda s, wh: set_declared_size(s, *wh), seeds(), sides),
        st.builds(lambda s, wh: set_declared_size(s, *wh), takes_wide, wide),
    )


# --- the decoder's property ----------------------------------------------------------------------


def peak_rss_mib() -> float:
    """This process's high-water mark (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def check_decode(data: bytes, limits: ImageLimits, rss_ceiling_mib: float) -> str:
    """Decode ``data`` and return ``"decoded"`` or the error code. Fails (AssertionError, or the
    unexpected exception itself) unless the result is pixels within ``limits`` or a 400, in
    bounded time and memory."""
    started = time.monotonic()
    try:
        decoded = decode_image(data, limits)
    except RetouchError as exc:
        assert exc.status == 400, (type(exc).__name__, exc.status, exc.message)
        assert exc.error_code in DOCUMENTED_ERROR_CODES, exc.error_code
        outcome = exc.error_code
    else:
        pixels = decoded.pixels
        assert pixels.dtype == np.uint8 and pixels.ndim == 3, (pixels.dtype, pixels.shape)
        height, width, channels = pixels.shape
        assert channels in (3, 4), pixels.shape
        assert limits.min_side <= min(width, height), pixels.shape
        assert max(width, height) <= limits.max_side, pixels.shape
        assert decoded.format in ("JPEG", "PNG", "WEBP"), decoded.format
        outcome = "decoded"
    elapsed = time.monotonic() - started
    assert elapsed < SECONDS_PER_DECODE, f"decoding took {elapsed:.1f} s"
    assert peak_rss_mib() < rss_ceiling_mib, f"peak RSS {peak_rss_mib():.0f} MiB"
    return outcome


# --- request parsing -----------------------------------------------------------------------------

IMAGE_ENDPOINTS: dict[str, tuple[str, ...]] = {
    "/v1/remove-background": ("image",),
    "/v1/upscale": ("image",),
    "/v1/outpaint": ("image",),
    "/v1/generate-background": ("image",),
    "/v1/try-on": ("person_image", "garment_image"),
}

REQUEST_MODELS: tuple[type[BaseModel], ...] = (
    schemas.RemoveBackgroundRequest,
    schemas.UpscaleRequest,
    schemas.OutpaintRequest,
    schemas.GenerateBackgroundRequest,
    schemas.TryOnRequest,
)

# Each endpoint's fields (from schemas.py) with values near and on the valid side, so the
# examples get past the first check and into cross-field rules and nested models.
_PLAUSIBLE: dict[str, list[Any]] = {
    "format": ["png", "jpeg", "PNG"],
    "shadow": [True, False, "true", {"enabled": True, "opacity": 0.6}, {"enabled": "yes"}, {}],
    "crop": [True, False, "true", "1", "no"],
    "margin": ["10%", "100px", "49%", "50%", " 5 px ", "-1px", "1e9px", "%", 10],
    "margin_left": ["0px", "12.5%", "px"],
    "margin_top": ["3%", "99999999999999999999px"],
    "scale": [2, 4, "2", 3, 2.0, "4.0", 0, -2, True],
    "left": [0, 1, 2000, 2001, -1, "256", 1e308],
    "right": [512, "x"],
    "top": [128, 2**63],
    "bottom": [0, None],
    "creativity": [0, 0.5, 1, 1.5, "NaN", "inf", -0.0],
    "output_format": ["jpeg", "png", "webp"],
    "image_transform": [{}, {"scale": 0.6, "x_center": 0.2}, {"scale": 0}, {"y_center": 2}],
    "scene": ["marble", "wood", "moon"],
    "prompt": ["a kitchen", "x" * 1001, "\u202e\u0000"],
    "negative_prompt": ["stone, wood"],
    "seed": [0, 2**31 - 1, 2**31, -1, "7"],
    "garment_mode": ["auto", "upper", "lower", "full", "sideways"],
    "preprocess_garment": [True, "false"],
    "remove_background": [False, "true"],
    "wait_for_result": [False, "false", "maybe"],
    "webhook_url": ["http://127.0.0.1:9/hook", "ftp://x", "http://", "x" * 2049],
}
_URLS = [
    "https://example.com/product.jpg",
    "http://127.0.0.1:9/a.png",
    "http://[::1",
    "javascript:alert(1)",
    "",
    "x" * 2049,
]
_FIELDS = [*_PLAUSIBLE, "image_url", "person_image_url", "garment_image_url"]

_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=40)
    | st.sampled_from([2**64, -(2**63), 1e308, "", " ", "true", "null", "{", "{}"])
)
json_values = st.recursive(
    _scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)


def _field_value(name: str) -> st.SearchStrategy[Any]:
    plausible = _URLS if name.endswith("_url") else _PLAUSIBLE.get(name, [])
    return st.sampled_from(plausible) | json_values if plausible else json_values


@st.composite
def json_fields(draw: st.DrawFn) -> dict[str, Any]:
    """An object of known fields (plausible or random values) and unknown ones."""
    names = draw(st.lists(st.sampled_from(_FIELDS), max_size=6, unique=True))
    fields = {name: draw(_field_value(name)) for name in names}
    fields.update(draw(st.dictionaries(st.text(max_size=12), json_values, max_size=3)))
    return fields


@dataclass(frozen=True)
class FuzzRequest:
    """One POST, as bytes on the wire (so malformed bodies are possible)."""

    path: str
    content: bytes
    headers: dict[str, str] = field(default_factory=dict)

    def send(self, client: httpx.Client, api_key: str) -> httpx.Response:
        return client.post(
            self.path, content=self.content, headers={"X-API-KEY": api_key, **self.headers}
        )


# What an HTTP client can send at all: h11 refuses control characters and surrounding spaces.
_header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60).map(
    str.strip
)
_extra_headers = st.fixed_dictionaries(
    {},
    optional={
        "Accept": st.sampled_from(["image/*", "image/png", "application/json", "*/*"])
        | _header_text,
        "Idempotency-Key": _header_text,
    },
)


@st.composite
def json_requests(draw: st.DrawFn) -> FuzzRequest:
    """JSON bodies: objects of fields, other JSON values, and bytes that are not JSON."""
    body = draw(
        st.one_of(
            json_fields().map(lambda f: json.dumps(f).encode()),
            json_values.map(lambda v: json.dumps(v).encode()),
            st.sampled_from([b"", b"  \n", b"{", b'{"scale": 2', b"\xff\xfe{}", b"[]", b"NaN"]),
            st.binary(max_size=64),
            st.text(max_size=64).map(lambda t: t.encode("utf-8", "surrogatepass")),
        )
    )
    content_type = draw(
        st.sampled_from(["application/json", "application/json; charset=utf-8", "Application/JSON"])
    )
    return FuzzRequest(
        path=draw(st.sampled_from(list(IMAGE_ENDPOINTS))),
        content=body,
        headers={"Content-Type": content_type, **draw(_extra_headers)},
    )


def tiny_images() -> st.SearchStrategy[bytes]:
    """Image parts that can never succeed: junk, undersized valid images (under the 64 px
    minimum), and those mutated. A request that parses still ends in a 400, never a model run."""
    return st.one_of(seeds((20, 16)), mutated_files((20, 16)), arbitrary_bytes)


@dataclass(frozen=True)
class Part:
    name: str
    value: bytes
    filename: str | None = None
    content_type: str | None = None

    def encode(self, boundary: bytes) -> bytes:
        disposition = f'form-data; name="{self.name}"'
        if self.filename is not None:
            disposition += f'; filename="{self.filename}"'
        lines = [b"--" + boundary, b"Content-Disposition: " + disposition.encode()]
        if self.content_type is not None:
            lines.append(b"Content-Type: " + self.content_type.encode())
        return b"\r\n".join([*lines, b"", self.value]) + b"\r\n"


_part_names = st.sampled_from(
    [*_FIELDS, "image", "person_image", "garment_image", "", 'a"b', "ü"]
) | st.text(max_size=16)


@st.composite
def _parts(draw: st.DrawFn, images: tuple[str, ...]) -> Part:
    if draw(st.booleans()):  # a file part, usually under an expected name
        name = draw(st.sampled_from(images) | _part_names)
        return Part(
            name=name,
            value=draw(tiny_images()),
            filename=draw(st.sampled_from(["a.png", "", "x.jpg", "../../etc/passwd"]) | st.text()),
            content_type=draw(st.none() | st.sampled_from(["image/png", "text/plain", ""])),
        )
    name = draw(_part_names)
    raw = draw(_field_value(name))
    text = raw if isinstance(raw, str) else json.dumps(raw)
    return Part(name=name, value=text.encode("utf-8", "surrogatepass"))


@st.composite
def multipart_requests(draw: st.DrawFn) -> FuzzRequest:
    """Multipart bodies: fields as text, file parts, and broken framing."""
    path = draw(st.sampled_from(list(IMAGE_ENDPOINTS)))
    boundary = draw(st.sampled_from([b"fuzzboundary", b"x", b"a" * 70, b"--"]))
    parts = draw(st.lists(_parts(IMAGE_ENDPOINTS[path]), max_size=5))
    body = b"".join(part.encode(boundary) for part in parts) + b"--" + boundary + b"--\r\n"
    framing = draw(st.sampled_from(["ok", "truncate", "no-end", "wrong-boundary", "garbage"]))
    if framing == "truncate":
        body = body[: draw(st.integers(0, len(body)))]
    elif framing == "no-end":
        body = body.rsplit(b"--" + boundary + b"--", 1)[0]
    elif framing == "garbage":
        body = draw(st.binary(max_size=32)) + body
    declared = boundary if framing != "wrong-boundary" else boundary + b"X"
    content_type = draw(
        st.sampled_from(
            [
                f"multipart/form-data; boundary={declared.decode()}",
                f'multipart/form-data; boundary="{declared.decode()}"',
                f"Multipart/Form-Data; charset=utf-8; boundary={declared.decode()}",
                "multipart/form-data",
                "multipart/form-data; boundary=",
            ]
        )
    )
    return FuzzRequest(
        path=path, content=body, headers={"Content-Type": content_type, **draw(_extra_headers)}
    )


@st.composite
def odd_content_type_requests(draw: st.DrawFn) -> FuzzRequest:
    """Anything else in Content-Type, or none at all."""
    content_type = draw(
        st.sampled_from(
            [
                "text/plain",
                "application/x-www-form-urlencoded",
                "multipart/mixed; boundary=x",
                "application/json-patch+json",
                "image/png",
                ";",
                "application/json;;;",
            ]
        )
        | _header_text
    )
    headers = {"Content-Type": content_type} if draw(st.booleans()) else {}
    body = draw(st.binary(max_size=64) | json_fields().map(lambda f: json.dumps(f).encode()))
    return FuzzRequest(
        path=draw(st.sampled_from(list(IMAGE_ENDPOINTS))),
        content=body,
        headers={**headers, **draw(_extra_headers)},
    )


any_request = st.one_of(json_requests(), multipart_requests(), odd_content_type_requests())


def check_response(response: httpx.Response) -> None:
    """No 5xx; every 4xx is Pixelcut's envelope with a documented code."""
    assert response.status_code < 500, (response.status_code, response.text[:300])
    if response.status_code >= 400:
        body = response.json()
        assert isinstance(body, dict) and set(body) == {"error", "error_code"}, body
        assert isinstance(body["error"], str) and body["error"], body
        assert body["error_code"] in DOCUMENTED_ERROR_CODES, body
