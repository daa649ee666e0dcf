"""Benchmark outpainting (``POST /v1/outpaint``): PatchMatch against OpenCV's Telea inpainting.

What it measures, on square synthetic product shots (``product_shots.py``) of each ``--sizes``
side, each extended by ``--pad`` px on every side (a 512 px input becomes a 768 px canvas with
the default 128):

* in-process: ``retouch.ops.outpaint.outpaint`` with ``create_filler("patchmatch", threads=1)``
  at creativity 0 and 1 against the naive baseline, the same call with
  ``create_filler("telea", threads=1)`` (``cv2.inpaint`` with ``INPAINT_TELEA`` on the same border
  mask, and the same canvas set-up and seam correction around it, so the ratio is the fillers'
  difference): median and min wall time over ``--repeats`` runs, median process CPU time, the
  ratio to Telea, and this process's peak RSS during each case with its rise over the RSS
  before it;
* quality (free: from the timed runs): each input is the centre crop of a shot ``2 * --pad`` px
  larger, so the true border is known. "low-freq error" is the mean absolute difference (grey
  levels) between fill and truth after a Gaussian blur of sigma 16 px: does the border continue
  the colours and shapes (lower is better)? "detail" is the fill's fine texture (the standard
  deviation of image minus a 2 px blur) as a share of the truth's: 1 keeps the texture, near 0 is
  a smear. A texture-synthesis fill is not expected to reproduce the truth's exact pixels, hence
  no PSNR, and a smear that keeps the mean colour scores well on the first number: read the two
  together;
* through HTTP: ``retouch serve`` started as a subprocess (fresh data dir, loopback), the same
  JPEGs sent as multipart ``image`` with ``left``/``top``/``right``/``bottom`` = ``--pad`` and
  ``Accept: image/*`` (the answer is a JPEG of the extended size, which is checked), at each
  ``--http-creativity``, ``--http-requests`` per case at each ``--concurrency`` level: latency
  p50/p95, images per second, the server tree's peak RSS and CPU seconds per image, and HTTP
  p50 / in-process median.

How to read it: PatchMatch works on a canvas scaled down to a fixed pixel budget (see
``retouch.engines.filler``), so its time barely grows with the input, unlike Telea's. The ratios
compare numbers from one run; on a busy machine (see the load averages) trust the CPU columns
over wall-clock ones. Nothing here asserts on timings. Run from the repository root with the
project's virtualenv::

    .venv/bin/python bench/outpaint.py
    .venv/bin/python bench/outpaint.py --sizes 512 --pad 256 --skip-http
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
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
    encode_jpeg,
    expect_image,
    install_stop_handlers,
    multipart,
    print_footer,
    print_header,
    print_http,
    print_timings,
    run_http,
    time_op,
)
from product_shots import product_shot

from retouch.engines.base import Filler
from retouch.engines.filler import create_filler
from retouch.ops.outpaint import MAX_EXTENSION, MIN_SIDE, outpaint

# Low-frequency error compares the images blurred this much (px): colour and shape, not the
# texture's exact phase. Detail is what a blur of DETAIL_SIGMA takes away: the fine texture.
LOW_SIGMA = 16.0
DETAIL_SIGMA = 2.0
SEED = 7


@dataclass(frozen=True)
class Input:
    size: int
    jpeg: bytes  # what is sent: the centre crop, as JPEG
    pixels: np.ndarray  # what the server decodes it to
    truth: np.ndarray  # the whole shot the crop came from
    border: np.ndarray  # bool, True on the pixels outpainting adds


def make_input(size: int, pad: int) -> Input:
    full = size + 2 * pad
    truth = decode_rgb(product_shot("mug", "grain", size=(full, full), seed=0).jpeg)
    jpeg = encode_jpeg(np.ascontiguousarray(truth[pad : pad + size, pad : pad + size]))
    border = np.ones((full, full), bool)
    border[pad : pad + size, pad : pad + size] = False
    return Input(size, jpeg, decode_rgb(jpeg), truth, border)


def extend(item: Input, filler: Filler, creativity: float, pad: int) -> np.ndarray:
    return outpaint(
        item.pixels,
        left=pad,
        top=pad,
        right=pad,
        bottom=pad,
        filler=filler,
        creativity=creativity,
        seed=SEED,
    )


def fill_quality(out: np.ndarray, item: Input) -> tuple[float, float]:
    """(low-frequency error in grey levels, detail as a share of the truth's) on the border."""
    ours, truth = out.astype(np.float32), item.truth.astype(np.float32)

    def blur(image: np.ndarray, sigma: float) -> np.ndarray:
        return cv2.GaussianBlur(image, (0, 0), sigma)

    error = float(np.abs(blur(ours, LOW_SIGMA) - blur(truth, LOW_SIGMA))[item.border].mean())
    ours_fine = (ours - blur(ours, DETAIL_SIGMA))[item.border]
    truth_fine = (truth - blur(truth, DETAIL_SIGMA))[item.border]
    return error, float(ours_fine.std() / truth_fine.std())


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    add_common_args(parser, max_seconds=300)
    parser.add_argument("--pad", type=int, default=128, help="px added on each side (128)")
    parser.add_argument(
        "--http-creativity",
        type=lambda s: [float(c) for c in s.split(",")],
        default=[0.0],
        help="creativity values sent over HTTP, comma-separated (0)",
    )
    args = parser.parse_args(argv)
    check_common_args(parser, args)
    if not 1 <= args.pad <= MAX_EXTENSION:
        parser.error(f"--pad must be 1-{MAX_EXTENSION}")
    if min(args.sizes) < MIN_SIDE:
        parser.error(f"outpaint needs inputs of at least {MIN_SIDE} px")
    if not all(0 <= c <= 1 for c in args.http_creativity):
        parser.error("--http-creativity values must be in [0, 1]")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    deadline = Deadline(args.max_seconds)
    install_stop_handlers(deadline)
    print_header(
        f"Outpaint: PatchMatch (1 thread) vs Telea (cv2.inpaint), {args.pad} px on each side", args
    )
    pad = args.pad
    status = 0
    try:
        patchmatch = create_filler("patchmatch", threads=1)
        telea = create_filler("telea", threads=1)
        warm = make_input(MIN_SIDE, 16)
        for filler in (patchmatch, telea):  # untimed: first-call allocations
            extend(warm, filler, 0.0, 16)
        peak = PeakRss()
        rows: list[tuple[Timing, Timing | None]] = []
        scores: list[tuple[int, str, float, float]] = []
        in_process: dict[tuple[int, float], Timing] = {}
        inputs = [make_input(size, pad) for size in args.sizes]
        for item in inputs:
            print(f"[in-process] {item.size} -> {item.size + 2 * pad}...")
            base, out = time_op(
                item.size,
                "Telea (cv2.inpaint) via outpaint()",
                partial(extend, item, telea, 0.0, pad),
                repeats=args.repeats,
                deadline=deadline,
                peak=peak,
            )
            if out is not None:
                scores.append((item.size, base.label, *fill_quality(out, item)))
            for creativity in (0.0, 1.0):
                ours, out = time_op(
                    item.size,
                    f"PatchMatch creativity {creativity:g}",
                    partial(extend, item, patchmatch, creativity, pad),
                    repeats=args.repeats,
                    deadline=deadline,
                    peak=peak,
                )
                in_process[item.size, creativity] = ours
                rows.append((ours, base))
                if out is not None:
                    scores.append((item.size, ours.label, *fill_quality(out, item)))
            rows.append((base, None))
        print_timings(rows, args.repeats, peak.method)
        print(
            f"\nQuality of the added border vs the true one (input = centre crop of a larger "
            f"shot): low-freq error = mean |blur(fill) - blur(truth)|, sigma {LOW_SIGMA:g} px, "
            f"grey levels (lower is better); detail = std of fill - blur(fill), sigma "
            f"{DETAIL_SIGMA:g} px, / the truth's (1 = as textured, ~0 = a smear)"
        )
        print(f"  {'size':>5} {'case':<36} {'low-freq error':>14} {'detail':>7}")
        for size, label, error, detail in scores:
            print(f"  {size:>5} {label:<36} {error:>14.2f} {detail:>7.2f}")
        if not args.skip_http:
            cases = []
            for item in inputs:
                for creativity in args.http_creativity:
                    fields = {side: str(pad) for side in ("left", "top", "right", "bottom")}
                    body, content_type = multipart(
                        {"image": ("shot.jpg", item.jpeg, "image/jpeg")},
                        {**fields, "creativity": f"{creativity:g}"},
                    )
                    full = item.size + 2 * pad
                    cases.append(
                        HttpCase(
                            size=item.size,
                            label=f"PatchMatch c={creativity:g}",
                            path="/v1/outpaint",
                            body=body,
                            content_type=content_type,
                            check=expect_image("image/jpeg", (full, full)),
                            in_process=in_process.get((item.size, creativity)),
                        )
                    )
            with tempfile.TemporaryDirectory(prefix="retouch-bench-") as tmp:
                status = print_http(run_http(cases, args, deadline, Path(tmp)))
    except (KeyboardInterrupt, HardStop) as exc:
        print(f"\ninterrupted ({type(exc).__name__}: {exc}): server stopped")
        return 130
    print_footer(deadline)
    return status


if __name__ == "__main__":
    sys.exit(main())
