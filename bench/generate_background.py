"""Benchmark ``POST /v1/generate-background``: a procedural scene against a flat colour.

What it measures, on square synthetic product shots (``product_shots.py``, JPEG, no alpha) of
each ``--sizes`` side; the output is always 1024x1024:

* in-process, from an RGB input (what most clients send): ``retouch.ops.generate_background.
  generate_background`` with the real segmenter ``create_segmenter("u2netp", threads=1)`` and
  ``create_background_generator("procedural")`` (scene ``--scene``: cut-out, trim, placement at
  scale 0.6, scene, contact shadow, composite) against the naive baseline: the same segmenter and
  cut-out placed the same way on a flat colour, no shadow;
* in-process, from the cut-out (RGBA, as a client that removed the background itself sends): the
  same two without the segmenter, which isolates what the scene and shadow cost over a flat fill;
* for each case: median and min wall time over ``--repeats`` runs, median process CPU time, the
  ratio to its flat-colour baseline, and this process's peak RSS during the case with its rise
  over the RSS before it. Cheap quality number: IoU of the segmenter's cut-out (alpha > 0.5)
  with the shot's true mask;
* through HTTP: ``retouch serve`` started as a subprocess (fresh data dir, loopback), the same
  RGB JPEGs sent as multipart ``image`` with ``scene`` and ``seed`` (so the server draws the same
  scene as the in-process run) and ``Accept: image/*`` (the answer is a 1024x1024 JPEG, which is
  checked), ``--http-requests`` per case at each ``--concurrency`` level: latency p50/p95, images
  per second, the server tree's peak RSS and CPU seconds per image, and HTTP p50 / in-process
  median of the RGB case.

How to read it: the RGB ratio is what a caller pays for a scene instead of a plain backdrop
(the segmenter dominates both); the cut-out ratio is the scene's own cost. The ratios compare
numbers from one run; on a busy machine (see the load averages) trust the CPU columns over
wall-clock ones. Nothing here asserts on timings. Run from the repository root with the
project's virtualenv::

    .venv/bin/python bench/generate_background.py
    .venv/bin/python bench/generate_background.py --scene linen --skip-http
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from functools import partial
from pathlib import Path

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
    multipart,
    print_footer,
    print_header,
    print_http,
    print_timings,
    run_http,
    time_op,
)
from product_shots import product_shot

from retouch.engines.base import BackgroundGenerator, Segmenter
from retouch.engines.scenes import SCENES, create_background_generator
from retouch.engines.segmenter import create_segmenter
from retouch.ops.compose import place_subject, trim_to_alpha
from retouch.ops.cutout import cutout
from retouch.ops.generate_background import (
    AUTO_CUTOUT_SCALE,
    CANVAS,
    Placement,
    SceneRequest,
    generate_background,
)

FLAT = np.array([240, 240, 240], np.float32)
SEED = 7


def on_flat(subject: np.ndarray) -> np.ndarray:
    """The baseline's second half: a trimmed RGBA cut-out placed as the operation places it
    (scale 0.6, centred) and alpha-blended over a flat colour."""
    canvas = place_subject(
        subject, canvas_size=CANVAS, scale=AUTO_CUTOUT_SCALE, x_center=0.5, y_center=0.5
    )
    alpha = canvas[..., 3:].astype(np.float32) / 255
    out = canvas[..., :3] * alpha + FLAT * (1 - alpha)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def cut_out(segmenter: Segmenter, rgb: np.ndarray) -> np.ndarray:
    """Segment, cut out and trim, as the operation does for an RGB input."""
    return trim_to_alpha(cutout(rgb, segmenter.mask(rgb)))


def flat_from_rgb(segmenter: Segmenter, rgb: np.ndarray) -> np.ndarray:
    return on_flat(cut_out(segmenter, rgb))


def scene_on(
    pixels: np.ndarray,
    segmenter: Segmenter,
    generator: BackgroundGenerator,
    scene: str,
) -> np.ndarray:
    # Scale 0.6 given explicitly, so an RGBA cut-out is placed like an auto cut-out (the
    # operation's default for RGBA input is 1).
    return generate_background(
        pixels,
        segmenter=segmenter,
        generator=generator,
        placement=Placement(scale=AUTO_CUTOUT_SCALE),
        scene=SceneRequest(scene=scene, seed=SEED),
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    # Cheap per image, and the scene's share is small next to the segmenter's: more runs.
    add_common_args(parser, max_seconds=240, repeats=5, http_requests=6)
    parser.add_argument("--scene", choices=SCENES, default="marble", help="scene (marble)")
    args = parser.parse_args(argv)
    check_common_args(parser, args)
    if min(args.sizes) < 64:
        parser.error("inputs must be at least 64 px")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    deadline = Deadline(args.max_seconds)
    install_stop_handlers(deadline)
    print_header(
        f"Generate background: u2netp + procedural scene {args.scene!r} vs the same cut-out on "
        "a flat colour",
        args,
    )
    status = 0
    try:
        segmenter = create_segmenter("u2netp", threads=1)
        generator = create_background_generator("procedural")
        warm = decode_rgb(product_shot("bottle", "blobs", size=(128, 128), seed=0).jpeg)
        flat_from_rgb(segmenter, warm)  # untimed: first-call allocations
        scene_on(warm, segmenter, generator, args.scene)
        peak = PeakRss()
        rows: list[tuple[Timing, Timing | None]] = []
        ious: list[tuple[int, float]] = []
        cases: list[HttpCase] = []
        for size in args.sizes:
            print(f"[in-process] {size}...")
            shot = product_shot("bottle", "blobs", size=(size, size), seed=0)
            rgb = decode_rgb(shot.jpeg)
            subject = cut_out(segmenter, rgb)
            fg = segmenter.mask(rgb) > 0.5
            ious.append((size, float((fg & shot.mask).sum() / (fg | shot.mask).sum())))
            runs = [
                ("flat colour, RGB in (segment+place)", partial(flat_from_rgb, segmenter, rgb)),
                (
                    f"{args.scene}, RGB in (segment+scene)",
                    partial(scene_on, rgb, segmenter, generator, args.scene),
                ),
                ("flat colour, cut-out in (place)", partial(on_flat, subject)),
                (
                    f"{args.scene}, cut-out in (scene)",
                    partial(scene_on, subject, segmenter, generator, args.scene),
                ),
            ]
            timings = [
                time_op(size, label, fn, repeats=args.repeats, deadline=deadline, peak=peak)[0]
                for label, fn in runs
            ]
            rows += [
                (timings[1], timings[0]),
                (timings[0], None),
                (timings[3], timings[2]),
                (timings[2], None),
            ]
            body, content_type = multipart(
                {"image": ("shot.jpg", shot.jpeg, "image/jpeg")},
                {"scene": args.scene, "seed": str(SEED)},
            )
            cases.append(
                HttpCase(
                    size=size,
                    label=f"{args.scene}, RGB in",
                    path="/v1/generate-background",
                    body=body,
                    content_type=content_type,
                    check=expect_image("image/jpeg", (CANVAS[1], CANVAS[0])),
                    in_process=timings[1],
                )
            )
        print_timings(rows, args.repeats, peak.method)
        print("\nCut-out IoU (segmenter alpha > 0.5 vs the shot's true mask)")
        for size, iou in ious:
            print(f"  {size:>5} {iou:.3f}")
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
