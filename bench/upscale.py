"""Benchmark upscaling (``POST /v1/upscale``): SPAN super-resolution against plain bicubic.

What it measures, on square synthetic product shots (``product_shots.py``, JPEG) of each
``--sizes`` side, at 2x and 4x:

* in-process: ``retouch.ops.upscale.upscale_image`` with ``create_upscaler("span", threads=1)``
  against the naive baseline ``cv2.resize(..., INTER_CUBIC)`` on the same decoded pixels, both
  in this process, one after the other: median and min wall time over ``--repeats`` runs, median
  process CPU time, the ratio SPAN / bicubic (how many times longer the network takes), and this
  process's peak RSS during each case with its rise over the RSS before it (the memory the
  operation itself needs: the models are already loaded);
* quality (cheap, once): each image downscaled 2x or 4x (INTER_AREA) and brought back by SPAN
  and by bicubic; PSNR against the original. Higher is better; the difference is what the
  network buys for its time;
* through HTTP: ``retouch serve`` started as a subprocess (fresh data dir, loopback), the same
  JPEGs sent as multipart ``image`` with ``scale`` and ``Accept: image/*`` (the answer is a JPEG
  of the upscaled size, which is checked), ``--http-requests`` requests per case at each
  ``--concurrency`` level: latency p50/p95, images per second, the server tree's peak RSS and
  CPU seconds per image, and HTTP p50 / in-process median (what decoding, JPEG encoding, the
  transfer and the billing bookkeeping add).

How to read it: the ratios compare numbers taken minutes apart in one run, so they survive a
slow machine better than the absolute times; on a busy machine (see the printed load averages)
trust the CPU columns over wall-clock ones. Bicubic is OpenCV's own multi-threaded resize, so its
CPU time can exceed its wall time. Nothing here asserts on timings. Run from the repository root
with the project's virtualenv::

    .venv/bin/python bench/upscale.py
    .venv/bin/python bench/upscale.py --sizes 512 --scales 4 --skip-http
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import cv2
import numpy as np
from common import (
    Deadline,
    HardStop,
    HttpCase,
    PeakRss,
    Timing,
    add_common_args,
    check_common_args,
    decode_rgb,
    expect_image,
    install_stop_handlers,
    int_list,
    multipart,
    print_footer,
    print_header,
    print_http,
    print_timings,
    psnr,
    run_http,
    time_op,
)
from product_shots import product_shot

from retouch.engines.base import Upscaler
from retouch.engines.upscaler import create_upscaler
from retouch.ops.upscale import MAX_OUTPUT_SIDE, max_input_side, upscale_image

# The timed image, and the ones PSNR is averaged over (the first of them is the timed one).
SHOTS = (("bottle", "grain"), ("box", "blobs"), ("mug", "gradient"))


def bicubic(pixels: np.ndarray, scale: int) -> np.ndarray:
    h, w = pixels.shape[:2]
    return cv2.resize(pixels, (w * scale, h * scale), interpolation=cv2.INTER_CUBIC)


def image(size: int, index: int = 0) -> bytes:
    product, background = SHOTS[index]
    return product_shot(product, background, size=(size, size), seed=index).jpeg


def quality(
    span: Upscaler, sizes: Sequence[int], scales: Sequence[int], count: int, deadline: Deadline
) -> None:
    """PSNR of SPAN and bicubic after a downscale, per size and scale, averaged over images."""
    if count < 1:
        return
    print(
        f"\nQuality: each of {count} image(s) downscaled by the scale (INTER_AREA), upscaled "
        "back; PSNR (dB) vs the original, mean (min)"
    )
    print(f"  {'size':>5} {'scale':>5} {'SPAN':>14} {'bicubic':>14} {'SPAN - bicubic':>15}")
    for size in sizes:
        truths = [decode_rgb(image(size, i)) for i in range(count)]
        for scale in scales:
            if deadline.expired():
                print(f"  {size:>5} {scale:>5}x skipped (--max-seconds)")
                continue
            ours, theirs = [], []
            for truth in truths:
                small = cv2.resize(
                    truth, (size // scale, size // scale), interpolation=cv2.INTER_AREA
                )
                ours.append(psnr(upscale_image(small, upscaler=span, scale=scale), truth))
                theirs.append(psnr(bicubic(small, scale), truth))
            gains = np.subtract(ours, theirs)
            print(
                f"  {size:>5} {scale:>4}x {np.mean(ours):>7.2f} ({min(ours):.2f}) "
                f"{np.mean(theirs):>7.2f} ({min(theirs):.2f}) {np.mean(gains):>+8.2f} "
                f"({min(gains):+.2f})"
            )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    add_common_args(parser, max_seconds=360)
    parser.add_argument("--scales", type=int_list, default=[2, 4], help="2 and/or 4 (2,4)")
    parser.add_argument(
        "--quality-images", type=int, default=3, help=f"images for PSNR, 0-{len(SHOTS)} (3)"
    )
    args = parser.parse_args(argv)
    check_common_args(parser, args)
    if not set(args.scales) <= {2, 4}:
        parser.error("--scales takes 2 and/or 4")
    if not 0 <= args.quality_images <= len(SHOTS):
        parser.error(f"--quality-images must be 0-{len(SHOTS)}")
    for size in args.sizes:
        for scale in args.scales:
            if not 64 <= size <= max_input_side(scale):
                parser.error(
                    f"size {size} at {scale}x: inputs are 64-{max_input_side(scale)} px "
                    f"(outputs at most {MAX_OUTPUT_SIDE})"
                )
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    deadline = Deadline(args.max_seconds)
    install_stop_handlers(deadline)
    print_header("Upscale: SPAN (ncnn, 1 thread) vs bicubic (cv2.INTER_CUBIC)", args)
    status = 0
    try:
        span = create_upscaler("span", threads=1)
        warm = decode_rgb(image(128))
        for scale in args.scales:  # untimed: first-call allocations
            upscale_image(warm, upscaler=span, scale=scale)
        peak = PeakRss()
        rows: list[tuple[Timing, Timing | None]] = []
        cases: list[HttpCase] = []
        for size in args.sizes:
            jpeg = image(size)
            pixels = decode_rgb(jpeg)
            for scale in args.scales:
                print(f"[in-process] {size} x{scale}...")
                base, _ = time_op(
                    size,
                    f"bicubic x{scale} (cv2 INTER_CUBIC)",
                    partial(bicubic, pixels, scale),
                    repeats=args.repeats,
                    deadline=deadline,
                    peak=peak,
                )
                ours, _ = time_op(
                    size,
                    f"SPAN x{scale}",
                    partial(upscale_image, pixels, upscaler=span, scale=scale),
                    repeats=args.repeats,
                    deadline=deadline,
                    peak=peak,
                )
                rows += [(ours, base), (base, None)]
                body, content_type = multipart(
                    {"image": ("shot.jpg", jpeg, "image/jpeg")}, {"scale": str(scale)}
                )
                cases.append(
                    HttpCase(
                        size=size,
                        label=f"SPAN x{scale}",
                        path="/v1/upscale",
                        body=body,
                        content_type=content_type,
                        check=expect_image("image/jpeg", (size * scale, size * scale)),
                        in_process=ours,
                    )
                )
        print_timings(rows, args.repeats, peak.method)
        quality(span, args.sizes, args.scales, args.quality_images, deadline)
        del span  # the server loads its own
        if not args.skip_http:
            with tempfile.TemporaryDirectory(prefix="retouch-bench-") as tmp:
                status = print_http(run_http(cases, args, deadline, Path(tmp)))
    except (KeyboardInterrupt, HardStop) as exc:
        print(f"\ninterrupted ({type(exc).__name__}: {exc}): server stopped")
        return 130
    print_footer(deadline)
    return status


if __name__ == "__main__":
    sys.exit(main())
