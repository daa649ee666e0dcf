"""Benchmark ``POST /v1/generate-background``: prompt understanding, the scenes, and speed.

Quality first (``--quality-only`` stops there, ``--skip-quality`` leaves it out):

* prompt -> scene accuracy: ``PROMPTS``, 49 phrasings a product photographer might type, each
  with the library scene it should pick, chosen by the engine's ``SceneChooser`` (the
  all-MiniLM-L6-v2 embeddings); prints the accuracy, every confusion with the runner-up score,
  and the time per prompt. The scene phrases were written with this list in view, so it is a
  check against regressions; ``HELD_OUT``, 24 more written afterwards and never tuned against,
  is the honest score;
* a contact sheet, ``--sheet`` (docs/quality/generate-background-prompts.png): for one prompt per
  scene and a few colour words, the prompt and the scene chosen above the whole operation's
  result, on real product photos that ship in scikit-image (``data.coffee()``, a cup, and
  ``data.rocket()``) cut out by u2netp, and a synthetic bottle (``product_shots.py``).

Then speed: a procedural scene against a flat colour.

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
    .venv/bin/python bench/generate_background.py --quality-only
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import textwrap
import time
from collections import Counter
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
from retouch.engines.scenes import SCENES, ProceduralScenes, create_background_generator
from retouch.engines.segmenter import create_segmenter
from retouch.ops.compose import place_subject, trim_to_alpha
from retouch.ops.cutout import cutout
from retouch.ops.generate_background import (
    AUTO_CUTOUT_SCALE,
    CANVAS,
    Placement,
    SceneRequest,
    compose_scene,
    generate_background,
)

ROOT = Path(__file__).resolve().parent.parent
SHEET = ROOT / "docs" / "quality" / "generate-background-prompts.png"
# (prompt, the library scene it asks for)
PROMPTS: tuple[tuple[str, str], ...] = (
    ("a sunny beach with blue sky and golden sand", "beach"),
    ("on the sand by the sea", "beach"),
    ("tropical island shore with palm trees", "beach"),
    ("summer vacation at the ocean", "beach"),
    ("snowy winter morning", "snow"),
    ("on fresh snow with fir trees behind", "snow"),
    ("ski resort in the alps", "snow"),
    ("deep in a pine forest", "forest"),
    ("moss and ferns in the woods", "forest"),
    ("autumn woodland floor", "forest"),
    ("a flower garden in spring", "garden"),
    ("patio with potted plants", "garden"),
    ("blooming roses in the backyard", "garden"),
    ("floating in the clouds", "sky"),
    ("bright blue sky background", "sky"),
    ("city skyline at night with bokeh lights", "city"),
    ("a rooftop in new york at dusk", "city"),
    ("urban street at sunset", "city"),
    ("on a kitchen counter next to the stove", "counter"),
    ("kitchen worktop with subway tiles", "counter"),
    ("on a table in a cozy coffee shop", "cafe"),
    ("cafe table with a latte", "cafe"),
    ("in a bright living room with a sofa", "living-room"),
    ("home decor, coffee table in the lounge", "living-room"),
    ("on a bathroom shelf by the mirror", "bathroom"),
    ("spa bathroom with white tiles", "bathroom"),
    ("white marble with grey veins", "marble"),
    ("luxury carrara marble slab", "marble"),
    ("light oak wooden table", "wood"),
    ("rustic pine planks", "wood"),
    ("dark walnut table", "wood-dark"),
    ("on dark wood", "wood-dark"),
    ("raw concrete", "industrial"),
    ("industrial loft floor", "industrial"),
    ("soft linen fabric", "linen"),
    ("on a wrinkled cotton cloth", "linen"),
    ("natural slate stone", "stone"),
    ("rough rock surface", "stone"),
    ("kraft paper background", "paper"),
    ("on textured paper", "paper"),
    ("plain white studio background", "studio"),
    ("solid pink backdrop", "studio"),
    ("simple clean background", "studio"),
    ("pastel gradient from pink to blue", "gradient"),
    ("ombre backdrop", "gradient"),
    ("on a white podium", "podium"),
    ("product on a cylinder pedestal", "podium"),
    ("in front of a red brick wall", "brick"),
    ("exposed brickwork", "brick"),
)
# Written after the scene phrases and never tuned against: an honest check of generalisation.
HELD_OUT: tuple[tuple[str, str], ...] = (
    ("sunscreen bottle on a beach towel near the waves", "beach"),
    ("lying in the dunes at the seaside", "beach"),
    ("winter holiday, icy and white", "snow"),
    ("frost and snowflakes", "snow"),
    ("among tall trees in a national park", "forest"),
    ("on a log in the rainforest", "forest"),
    ("tulips and daisies in a meadow", "garden"),
    ("in the sky above the clouds", "sky"),
    ("neon downtown at midnight", "city"),
    ("bakery kitchen with a tiled wall", "counter"),
    ("espresso bar with warm lamps", "cafe"),
    ("on the coffee table next to the couch", "living-room"),
    ("next to the bathtub", "bathroom"),
    ("veined white stone like a luxury hotel", "marble"),
    ("scandinavian light birch wood", "wood"),
    ("mahogany desk", "wood-dark"),
    ("brutalist cement", "industrial"),
    ("on crumpled bedsheets", "linen"),
    ("against an old red brick building", "brick"),
    ("on a piece of basalt", "stone"),
    ("on a sheet of colored cardstock", "paper"),
    ("just a plain grey background", "studio"),
    ("soft two-tone fade", "gradient"),
    ("on a marble display plinth", "podium"),
)
# The sheet: one prompt per scene, then colour words on a backdrop and on a scene.
SHEET_PROMPTS: tuple[str, ...] = (
    "a sunny beach with blue sky and golden sand",
    "on fresh snow with fir trees behind",
    "moss and ferns in the woods",
    "a flower garden in spring",
    "floating in the clouds",
    "city skyline at night with bokeh lights",
    "on a kitchen counter next to the stove",
    "cafe table with a latte",
    "in a bright living room with a sofa",
    "on a bathroom shelf by the mirror",
    "luxury carrara marble slab",
    "light oak wooden table",
    "dark walnut table",
    "industrial loft floor",
    "soft linen fabric",
    "in front of a red brick wall",
    "natural slate stone",
    "kraft paper background",
    "plain white studio background",
    "pastel gradient from pink to blue",
    "on a white podium",
    "a navy blue podium",
    "solid sage green backdrop",
    "pink marble",
)
_TILE, _CAPTION = 320, 58

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


def prompt_accuracy(
    generator: ProceduralScenes,
    prompts: tuple[tuple[str, str], ...] = PROMPTS,
    title: str = "Prompt -> scene",
) -> float:
    """Print how many ``prompts`` pick their scene, and the confusions; return the accuracy."""
    chooser = generator.chooser
    misses: list[str] = []
    confusions: Counter[tuple[str, str]] = Counter()
    start = time.perf_counter()
    for prompt, expected in prompts:
        chosen = chooser.choose(prompt).scene
        if chosen != expected:
            scores = chooser.scores(prompt)
            wanted = float(scores[chooser.names.index(expected)])
            confusions[(expected, chosen)] += 1
            misses.append(
                f"  {prompt!r}: {chosen} ({scores.max():.2f}) for {expected} ({wanted:.2f})"
            )
    per_prompt = (time.perf_counter() - start) / len(prompts)
    accuracy = 1 - len(misses) / len(prompts)
    print(
        f"\n{title}: {len(prompts) - len(misses)}/{len(prompts)} = {accuracy:.1%} "
        f"({len({e for _, e in prompts})} scenes; {per_prompt * 1000:.1f} ms per prompt)"
    )
    for line in misses:
        print(line)
    for (expected, chosen), count in confusions.most_common():
        print(f"  confusion {expected} -> {chosen}: {count}")
    return accuracy


def sheet_subjects() -> list[tuple[str, np.ndarray]]:
    """Product photos to place: scikit-image's cup and rocket (real photographs, cut out by the
    segmenter in the operation) and the synthetic bottle."""
    subjects = []
    try:
        from skimage import data
    except ImportError:
        print("scikit-image is not installed: the sheet uses the synthetic bottle only")
    else:
        subjects += [("coffee", data.coffee()), ("rocket", data.rocket())]
    bottle = product_shot("bottle", "blobs", size=(768, 768), seed=0)
    return [*subjects, ("bottle", decode_rgb(bottle.jpeg))]


def _caption(prompt: str, scene: str) -> np.ndarray:
    band = np.full((_CAPTION, _TILE, 3), 24, np.uint8)
    lines = textwrap.wrap(prompt, 38)[:2]
    for i, line in enumerate(lines):
        cv2.putText(
            band,
            line,
            (6, 18 + 17 * i),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.45,
            (235, 235, 235),
            1,
            cv2.LINE_AA,
        )
    cv2.putText(
        band,
        f"-> {scene}",
        (6, _CAPTION - 6),
        cv2.FONT_HERSHEY_SIMPLEX,
        0.45,
        (120, 200, 255),
        1,
        cv2.LINE_AA,
    )
    return band


def contact_sheet(
    generator: ProceduralScenes, segmenter: Segmenter, path: Path, columns: int = 4
) -> None:
    """Write the prompt | result sheet: the whole operation, at its default placement."""
    subjects = sheet_subjects()
    tiles = []
    start = time.perf_counter()
    for i, prompt in enumerate(SHEET_PROMPTS):
        name, pixels = subjects[i % len(subjects)]
        result = compose_scene(
            pixels,
            segmenter=segmenter,
            generator=generator,
            placement=Placement(),
            scene=SceneRequest(prompt=prompt, seed=SEED + i),
        )
        image = cv2.resize(result.image, (_TILE, _TILE), interpolation=cv2.INTER_AREA)
        tiles.append(np.vstack([_caption(f"{prompt}  [{name}]", result.scene), image]))
    while len(tiles) % columns:
        tiles.append(np.zeros_like(tiles[0]))
    rows = [np.hstack(tiles[i : i + columns]) for i in range(0, len(tiles), columns)]
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet = cv2.cvtColor(np.vstack(rows), cv2.COLOR_RGB2BGR)
    cv2.imwrite(str(path), sheet, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    seconds = (time.perf_counter() - start) / len(SHEET_PROMPTS)
    print(f"\nContact sheet: {path} ({len(SHEET_PROMPTS)} prompts, {seconds:.2f} s each)")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    # Cheap per image, and the scene's share is small next to the segmenter's: more runs.
    add_common_args(parser, max_seconds=240, repeats=5, http_requests=6)
    parser.add_argument("--scene", choices=SCENES, default="marble", help="scene (marble)")
    quality = parser.add_mutually_exclusive_group()
    quality.add_argument("--quality-only", action="store_true", help="accuracy and sheet only")
    quality.add_argument("--skip-quality", action="store_true", help="timings only")
    parser.add_argument("--sheet", type=Path, default=SHEET, help=f"contact sheet ({SHEET})")
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
        if not args.skip_quality:
            assert isinstance(generator, ProceduralScenes)
            prompt_accuracy(generator)
            prompt_accuracy(generator, HELD_OUT, "Held-out prompts -> scene")
            contact_sheet(generator, segmenter, args.sheet)
            if args.quality_only:
                print_footer(deadline)
                return 0
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
