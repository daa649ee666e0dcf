"""Benchmark outpainting (``POST /v1/outpaint``): PatchMatch against OpenCV's Telea inpainting.

What it measures, on square synthetic product shots (``product_shots.py``) of each ``--sizes``
side, each extended by ``--pad`` px on every side (a 512 px input becomes a 768 px canvas with
the default 128):

* in-process: ``retouch.ops.outpaint.outpaint`` with ``create_filler("patchmatch", threads=1)``
  and the u2netp segmenter (as the service calls it) at creativity 0 and 1 against the naive
  baseline, the same call with ``create_filler("telea", threads=1)`` (``cv2.inpaint`` with
  ``INPAINT_TELEA`` on the same border mask, and the same canvas set-up and seam correction
  around it, so the ratio is the fillers' difference): median and min wall time over
  ``--repeats`` runs, median process CPU time, the ratio to Telea, and this process's peak RSS
  during each case with its rise over the RSS before it;
* quality (free: from the timed runs): each input is the centre crop of a shot ``2 * --pad`` px
  larger, so the true border is known. "low-freq error" is the mean absolute difference (grey
  levels) between fill and truth after a Gaussian blur of sigma 16 px: does the border continue
  the colours and shapes (lower is better)? "detail" is the fill's fine texture (the standard
  deviation of image minus a 2 px blur) as a share of the truth's: 1 keeps the texture, near 0 is
  a smear. A texture-synthesis fill is not expected to reproduce the truth's exact pixels, hence
  no PSNR, and a smear that keeps the mean colour scores well on the first number: read the two
  together. A copy of the product in the border adds edges and so raises "detail"; "away"
  measures detail only outside the rows and columns the product spans. PatchMatch at
  creativity 0 also runs without the segmenter (how it ran before issue 14);
* through HTTP: ``retouch serve`` started as a subprocess (fresh data dir, loopback), the same
  JPEGs sent as multipart ``image`` with ``left``/``top``/``right``/``bottom`` = ``--pad`` and
  ``Accept: image/*`` (the answer is a JPEG of the extended size, which is checked), at each
  ``--http-creativity``, ``--http-requests`` per case at each ``--concurrency`` level: latency
  p50/p95, images per second, the server tree's peak RSS and CPU seconds per image, and HTTP
  p50 / in-process median.

* clones on real photographs (scikit-image's ``chelsea``, ``astronaut`` and ``coffee``, each
  grown by 200 px left and right and 100 px on top, as in issue 14): for the ``--patches`` most
  detailed patches of the subject (the segmenter's mask), the best normalised cross-correlation
  of the patch's fine detail (the image minus a Gaussian blur of a twelfth of the patch side)
  anywhere wholly inside the new border. A copy of the patch scores about 1 (the cat's eye
  before subject exclusion: 0.99); unrelated content stays well below 0.6. PatchMatch runs
  with the segmenter, as the service calls it, and without (how it ran before), so the two
  columns compare in one run.

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
from skimage import data

from retouch.engines.base import Filler, Segmenter
from retouch.engines.filler import create_filler
from retouch.engines.segmenter import create_segmenter
from retouch.ops.outpaint import MAX_EXTENSION, MIN_SIDE, outpaint

# Low-frequency error compares the images blurred this much (px): colour and shape, not the
# texture's exact phase. Detail is what a blur of DETAIL_SIGMA takes away: the fine texture.
LOW_SIGMA = 16.0
DETAIL_SIGMA = 2.0
SEED = 7
AWAY_MARGIN = 20
# The real-photo extension of issue 14: (left, top, right, bottom) px.
PHOTO_SIDES = (200, 100, 200, 0)
PHOTOS = ("chelsea", "astronaut", "coffee")
# Subject patches: a sixth of the short side, within these bounds (px); a patch counts as the
# subject's when this share of it is (alpha > 0.5).
PATCH_SIDE = (32, 96)
PATCH_INSIDE = 0.9


@dataclass(frozen=True)
class Input:
    size: int
    jpeg: bytes  # what is sent: the centre crop, as JPEG
    pixels: np.ndarray  # what the server decodes it to
    truth: np.ndarray  # the whole shot the crop came from
    border: np.ndarray  # bool, True on the pixels outpainting adds
    # The border outside the rows and columns the product spans (plus a margin): there the
    # truth is background whatever a fill does next to the product.
    away: np.ndarray


def make_input(size: int, pad: int) -> Input:
    full = size + 2 * pad
    shot = product_shot("mug", "grain", size=(full, full), seed=0)
    truth = decode_rgb(shot.jpeg)
    jpeg = encode_jpeg(np.ascontiguousarray(truth[pad : pad + size, pad : pad + size]))
    border = np.ones((full, full), bool)
    border[pad : pad + size, pad : pad + size] = False
    rows, cols = np.flatnonzero(shot.mask.any(axis=1)), np.flatnonzero(shot.mask.any(axis=0))
    away = border.copy()
    away[max(0, rows[0] - AWAY_MARGIN) : rows[-1] + AWAY_MARGIN] = False
    away[:, max(0, cols[0] - AWAY_MARGIN) : cols[-1] + AWAY_MARGIN] = False
    return Input(size, jpeg, decode_rgb(jpeg), truth, border, away)


def extend(
    item: Input, filler: Filler, creativity: float, pad: int, segmenter: Segmenter | None = None
) -> np.ndarray:
    return outpaint(
        item.pixels,
        left=pad,
        top=pad,
        right=pad,
        bottom=pad,
        filler=filler,
        creativity=creativity,
        seed=SEED,
        segmenter=segmenter,
    )


Patch = tuple[int, int, int]  # top, left, side (px, in the original image)


def subject_patches(rgb: np.ndarray, subject: np.ndarray, count: int) -> list[Patch]:
    """The ``count`` most detailed non-overlapping square patches inside ``subject`` (bool):
    eyes, labels, edges, what a viewer recognises when it turns up twice."""
    side = int(np.clip(min(rgb.shape[:2]) // 6, *PATCH_SIDE))
    detail = _detail(rgb, side)
    candidates = []
    for y in range(0, rgb.shape[0] - side + 1, side // 4):
        for x in range(0, rgb.shape[1] - side + 1, side // 4):
            if subject[y : y + side, x : x + side].mean() >= PATCH_INSIDE:
                candidates.append((float(detail[y : y + side, x : x + side].std()), y, x))
    chosen: list[Patch] = []
    for _, y, x in sorted(candidates, reverse=True):
        if all(abs(y - cy) >= side or abs(x - cx) >= side for cy, cx, _ in chosen):
            chosen.append((y, x, side))
        if len(chosen) == count:
            break
    return chosen


def clone_scores(
    out: np.ndarray, border: np.ndarray, patches: Sequence[Patch], origin: tuple[int, int]
) -> list[float]:
    """For each patch of the original (placed at ``origin`` in ``out``), the best normalised
    cross-correlation of its fine detail with any window wholly inside ``border``."""
    oy, ox = origin
    known = cv2.integral((~border).astype(np.float32))
    scores = []
    for y, x, side in patches:
        detail = _detail(out, side)
        match = cv2.matchTemplate(
            detail, detail[oy + y : oy + y + side, ox + x : ox + x + side], cv2.TM_CCOEFF_NORMED
        )
        overlap = known[side:, side:] - known[:-side, side:] - known[side:, :-side]
        overlap += known[:-side, :-side]
        outside = overlap[: match.shape[0], : match.shape[1]] == 0
        scores.append(float(match[outside].max()) if outside.any() else float("nan"))
    return scores


def _detail(rgb: np.ndarray, side: int) -> np.ndarray:
    """Grey fine detail: what a clone repeats and a mere look-alike (an edge, a gradient) not."""
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    detail: np.ndarray = grey - cv2.GaussianBlur(grey, (0, 0), side / 12)
    return detail


def photo_clones(
    filler: Filler, segmenter: Segmenter, creativity: float, patches: int, deadline: Deadline
) -> list[tuple[str, float, float, float, float]]:
    """(photo, worst clone score with the segmenter, median with it, worst without, median
    without) per real photograph."""
    left, top, right, bottom = PHOTO_SIDES
    rows = []
    for name in PHOTOS:
        if deadline.expired():
            break
        rgb = np.ascontiguousarray(getattr(data, name)()[..., :3])
        h, w = rgb.shape[:2]
        border = np.ones((top + h + bottom, left + w + right), bool)
        border[top : top + h, left : left + w] = False
        chosen = subject_patches(rgb, segmenter.mask(rgb) > 0.5, patches)
        row: list[float] = []
        for seg in (segmenter, None):
            out = outpaint(
                rgb,
                left=left,
                top=top,
                right=right,
                bottom=bottom,
                filler=filler,
                creativity=creativity,
                seed=SEED,
                segmenter=seg,
            )
            scores = clone_scores(out, border, chosen, (top, left))
            row += [max(scores), float(np.median(scores))]
        rows.append((name, *row))
    return rows


def fill_quality(out: np.ndarray, truth: np.ndarray, border: np.ndarray) -> tuple[float, float]:
    """(low-frequency error in grey levels, detail as a share of the truth's) on ``border``."""
    ours, truth = out.astype(np.float32), truth.astype(np.float32)

    def blur(image: np.ndarray, sigma: float) -> np.ndarray:
        return cv2.GaussianBlur(image, (0, 0), sigma)

    error = float(np.abs(blur(ours, LOW_SIGMA) - blur(truth, LOW_SIGMA))[border].mean())
    ours_fine = (ours - blur(ours, DETAIL_SIGMA))[border]
    truth_fine = (truth - blur(truth, DETAIL_SIGMA))[border]
    return error, float(ours_fine.std() / truth_fine.std())


def border_quality(out: np.ndarray, item: Input) -> tuple[float, float, float]:
    """(low-frequency error, detail) on the whole border, and detail away from the product."""
    return (
        *fill_quality(out, item.truth, item.border),
        fill_quality(out, item.truth, item.away)[1],
    )


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
    parser.add_argument(
        "--patches", type=int, default=8, help="subject patches per real photograph (8)"
    )
    parser.add_argument(
        "--skip-photos", action="store_true", help="no clone scores on real photographs"
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
        segmenter = create_segmenter("u2netp", threads=1)
        warm = make_input(MIN_SIDE, 16)
        for filler in (patchmatch, telea):  # untimed: first-call allocations
            extend(warm, filler, 0.0, 16)
        peak = PeakRss()
        rows: list[tuple[Timing, Timing | None]] = []
        scores: list[tuple[int, str, float, float, float]] = []
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
                scores.append((item.size, base.label, *border_quality(out, item)))
            for creativity, seg in ((0.0, segmenter), (1.0, segmenter), (0.0, None)):
                label = f"PatchMatch creativity {creativity:g}"
                ours, out = time_op(
                    item.size,
                    label if seg else f"PatchMatch c={creativity:g}, no exclusion",
                    partial(extend, item, patchmatch, creativity, pad, seg),
                    repeats=args.repeats,
                    deadline=deadline,
                    peak=peak,
                )
                if seg:
                    in_process[item.size, creativity] = ours
                rows.append((ours, base))
                if out is not None:
                    scores.append((item.size, ours.label, *border_quality(out, item)))
            rows.append((base, None))
        print_timings(rows, args.repeats, peak.method)
        print(
            f"\nQuality of the added border vs the true one (input = centre crop of a larger "
            f"shot): low-freq error = mean |blur(fill) - blur(truth)|, sigma {LOW_SIGMA:g} px, "
            f"grey levels (lower is better); detail = std of fill - blur(fill), sigma "
            f"{DETAIL_SIGMA:g} px, / the truth's (1 = as textured, ~0 = a smear); 'away' = "
            f"detail outside the rows and columns the product spans (+{AWAY_MARGIN} px), where "
            f"a copied product cannot add edges"
        )
        print(f"  {'size':>5} {'case':<36} {'low-freq error':>14} {'detail':>7} {'away':>6}")
        for size, label, error, detail, away in scores:
            print(f"  {size:>5} {label:<36} {error:>14.2f} {detail:>7.2f} {away:>6.2f}")
        if not args.skip_photos:
            left, top, right, bottom = PHOTO_SIDES
            print(
                f"\nClones of the subject in the new border, real photographs grown by "
                f"{left}/{top}/{right}/{bottom} px (left/top/right/bottom): best NCC of the "
                f"fine detail of {args.patches} subject patches anywhere in the border "
                f"(~1 = a copy; target < 0.6), max and median over the patches"
            )
            print(
                f"  {'photo':<10} {'creativity':>10} {'max':>6} {'median':>7}"
                f" {'max, no exclusion':>18} {'median':>7}"
            )
            for creativity in (0.0, 1.0):
                for name, *values in photo_clones(
                    patchmatch, segmenter, creativity, args.patches, deadline
                ):
                    with_max, with_median, without_max, without_median = values
                    print(
                        f"  {name:<10} {creativity:>10g} {with_max:>6.2f} {with_median:>7.2f}"
                        f" {without_max:>18.2f} {without_median:>7.2f}"
                    )
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
