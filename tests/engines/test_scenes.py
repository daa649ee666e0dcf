"""The procedural scene generator: reproducible, each look its own, chosen by the rules."""

from __future__ import annotations

import itertools

import cv2
import numpy as np
import pytest

from retouch.engines.scenes import (
    SCENES,
    STUDIO,
    ProceduralScenes,
    create_background_generator,
    scene_for_prompt,
)
from retouch.ops.compose import composite, contact_shadow, place_subject

LOOKS = (*SCENES, STUDIO)
SIZE = 512
RED = (220, 20, 30)


@pytest.fixture(scope="module")
def generator() -> ProceduralScenes:
    return ProceduralScenes()


def subject_canvas(size: tuple[int, int] = (SIZE, SIZE)) -> np.ndarray:
    """A red box standing in the middle of the frame, as ``place_subject`` would leave it."""
    box = np.zeros((200, 120, 4), np.uint8)
    box[...] = (*RED, 255)
    return place_subject(box, canvas_size=size, scale=0.6, x_center=0.5, y_center=0.5)


def render(generator: ProceduralScenes, scene: str, seed: int = 0) -> np.ndarray:
    return generator.background(
        subject_canvas(), scene=scene, prompt=None, negative_prompt=None, seed=seed
    )


def test_scenes_are_the_spec_enum() -> None:
    assert SCENES == ("marble", "wood", "industrial", "linen", "brick", "counter")


@pytest.mark.parametrize("scene", LOOKS)
def test_a_scene_is_reproducible_for_a_seed_and_varies_with_it(
    generator: ProceduralScenes, scene: str
) -> None:
    first = render(generator, scene, seed=7)
    assert first.shape == (SIZE, SIZE, 3) and first.dtype == np.uint8
    np.testing.assert_array_equal(first, render(generator, scene, seed=7))
    other = render(generator, scene, seed=8)
    assert np.abs(first.astype(np.int16) - other).mean() > 1


@pytest.mark.parametrize("scene", LOOKS)
def test_a_scene_fills_any_canvas(generator: ProceduralScenes, scene: str) -> None:
    for canvas in (subject_canvas((300, 500)), np.zeros((500, 300, 4), np.uint8)):
        out = generator.background(canvas, scene=scene, prompt=None, negative_prompt=None, seed=1)
        assert out.shape == (*canvas.shape[:2], 3) and out.dtype == np.uint8
        # A backdrop, not a blank: every look has light and shade.
        assert out.std() > 3


def describe(image: np.ndarray) -> list[tuple[np.ndarray, float]]:
    """Per region (the wall at the top, the surface at the bottom): mean colour, and texture
    energy as the spread of a mid-frequency band (detail between ~2 and ~6 px)."""
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    band = cv2.GaussianBlur(grey, (0, 0), 1.5) - cv2.GaussianBlur(grey, (0, 0), 6)
    h = image.shape[0]
    regions = (slice(0, int(h * 0.35)), slice(int(h * 0.75), h))
    return [(image[rows].reshape(-1, 3).mean(axis=0), float(band[rows].std())) for rows in regions]


@pytest.mark.parametrize("seed", [0, 1])
def test_every_look_differs_clearly_from_every_other(
    generator: ProceduralScenes, seed: int
) -> None:
    canvas = np.zeros((SIZE, SIZE, 4), np.uint8)
    images = {
        look: generator.background(canvas, scene=look, prompt=None, negative_prompt=None, seed=seed)
        for look in LOOKS
    }
    stats = {look: describe(image) for look, image in images.items()}
    for a, b in itertools.combinations(LOOKS, 2):
        assert np.abs(images[a].astype(np.int16) - images[b]).mean() > 5, (a, b)
        colour = max(np.abs(sa[0] - sb[0]).max() for sa, sb in zip(stats[a], stats[b], strict=True))
        texture = max(
            max(sa[1], sb[1]) / max(min(sa[1], sb[1]), 1e-3)
            for sa, sb in zip(stats[a], stats[b], strict=True)
        )
        # Apart by 15 levels in a region's mean colour, or by 1.6x in its texture energy.
        assert colour > 15 or texture > 1.6, (a, b, colour, texture)


@pytest.mark.parametrize(
    ("prompt", "negative", "expected"),
    [
        ("a perfume bottle on a white marble slab", None, "marble"),
        ("Rustic WOODEN table, morning light", None, "wood"),
        ("on a concrete floor in a loft", None, "industrial"),
        ("soft linen cloth", None, "linen"),
        ("in front of a brick wall", None, "brick"),
        ("kitchen countertop", None, "counter"),
        ("minimal studio backdrop", None, "studio"),
        # Most hits wins; a tie goes to the look named first.
        ("marble table", None, "marble"),
        ("table of marble", None, "wood"),
        ("wooden table with a marble coaster", None, "wood"),
        # The negative prompt rules a look out, whatever the prompt says.
        ("marble table", "marble", "wood"),
        ("marble table", "no stone, no planks", "studio"),
        ("kitchen", "food, cooking", "studio"),
        # No keyword: the studio sweep.
        ("a beautiful product photo", None, "studio"),
        ("", None, "studio"),
        (None, None, "studio"),
        ("marbles", None, "studio"),  # words match exactly
    ],
)
def test_prompt_keywords_choose_the_look(
    prompt: str | None, negative: str | None, expected: str
) -> None:
    assert scene_for_prompt(prompt, negative, seed=0) == expected


def test_without_studio_the_seed_picks_among_the_looks_left() -> None:
    picks = {scene_for_prompt("a photo", "plain studio, wood", seed=seed) for seed in range(20)}
    assert picks == {"marble", "industrial", "linen", "brick", "counter"}
    everything = "marble wood metal linen brick kitchen studio"
    assert scene_for_prompt(None, everything, seed=3) == STUDIO


def test_the_scene_wins_over_the_prompts(generator: ProceduralScenes) -> None:
    canvas = subject_canvas()
    chosen = generator.background(
        canvas, scene="brick", prompt="marble", negative_prompt="brick", seed=2
    )
    np.testing.assert_array_equal(chosen, render(generator, "brick", seed=2))


def test_the_prompt_chooses_when_there_is_no_scene(generator: ProceduralScenes) -> None:
    by_prompt = generator.background(
        subject_canvas(), scene=None, prompt="on a wooden desk", negative_prompt=None, seed=4
    )
    np.testing.assert_array_equal(by_prompt, render(generator, "wood", seed=4))


def test_unknown_scene_and_negative_seed_are_refused(generator: ProceduralScenes) -> None:
    canvas = subject_canvas()
    with pytest.raises(ValueError, match="marble, wood, industrial, linen, brick, counter"):
        generator.background(canvas, scene="beach", prompt=None, negative_prompt=None, seed=0)
    with pytest.raises(ValueError, match="seed"):
        generator.background(canvas, scene="wood", prompt=None, negative_prompt=None, seed=-1)


def test_registry_builds_the_procedural_engine_and_names_the_known_ones() -> None:
    assert isinstance(create_background_generator("procedural"), ProceduralScenes)
    with pytest.raises(ValueError, match="known: procedural"):
        create_background_generator("stable-diffusion")


@pytest.mark.parametrize("scene", LOOKS)
def test_the_subject_lands_where_the_transform_says(
    generator: ProceduralScenes, scene: str
) -> None:
    """The whole generate-background picture at the spec's size: placed, shadowed, composited."""
    box = np.zeros((100, 100, 4), np.uint8)
    box[...] = (*RED, 255)
    canvas = place_subject(box, scale=0.3, x_center=0.35, y_center=0.6)
    background = generator.background(
        canvas, scene=scene, prompt=None, negative_prompt=None, seed=0
    )
    out = composite(background, canvas, contact_shadow(canvas))
    assert out.shape == (1024, 1024, 3)
    rows, cols = np.nonzero((out == RED).all(axis=-1))
    assert rows.size == round(0.3 * 1024) ** 2
    assert abs((cols.min() + cols.max() + 1) / 2 - 0.35 * 1024) <= 1
    assert abs((rows.min() + rows.max() + 1) / 2 - 0.6 * 1024) <= 1
    # The contact shadow darkens the scene just under the subject.
    under = out[rows.max() + 2 : rows.max() + 6, cols.min() + 20 : cols.max() - 20]
    assert (
        under.mean()
        < background[rows.max() + 2 : rows.max() + 6, cols.min() + 20 : cols.max() - 20].mean()
    )
