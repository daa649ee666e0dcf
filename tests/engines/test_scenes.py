"""The procedural scene generator: reproducible, each look its own, chosen by the prompt's
meaning (sentence embeddings), tinted by its colour words."""

from __future__ import annotations

import itertools

import cv2
import numpy as np
import pytest

from retouch.engines.scenes import (
    LIBRARY,
    PRESETS,
    SCENES,
    STUDIO,
    ProceduralScenes,
    colours_in,
    create_background_generator,
)
from retouch.engines.text_encoder import MiniLmEncoder
from retouch.ops.compose import composite, contact_shadow, place_subject
from retouch.ops.cutout import subject_box
from retouch.ops.generate_background import Placement, SceneRequest, compose_scene

LOOKS = PRESETS
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
        # The example: the grey studio used to come back.
        ("a sunny beach with blue sky and golden sand", None, "beach"),
        ("a perfume bottle on a white marble slab", None, "marble"),
        ("Rustic WOODEN table, morning light", None, "wood"),
        ("on a concrete floor in a loft", None, "industrial"),
        ("soft linen cloth", None, "linen"),
        ("in front of a brick wall", None, "brick"),
        ("kitchen countertop", None, "counter"),
        ("minimal studio backdrop", None, "studio"),
        # Words the old keyword lists never had.
        ("snow covered mountains", None, "snow"),
        ("sunlight through the trees of a forest", None, "forest"),
        ("city lights at night", None, "city"),
        ("a cozy coffee shop", None, "cafe"),
        ("skincare on a bathroom shelf", None, "bathroom"),
        ("dark walnut tabletop", None, "wood-dark"),
        ("on a round pedestal", None, "podium"),
        # The negative prompt pushes the scenes it resembles away.
        ("marble table", None, "marble"),
        ("a beach or a snowy field", "snow", "beach"),
        ("a beach or a snowy field", "beach, sand", "snow"),
        ("a wooden or marble kitchen counter", "kitchen", "marble"),
        # Nothing that names a place or a surface, or nothing at all: the studio sweep.
        ("a beautiful product photo", None, "studio"),
        ("", None, "studio"),
        (None, None, "studio"),
    ],
)
def test_the_prompt_chooses_the_nearest_scene_by_meaning(
    generator: ProceduralScenes, prompt: str | None, negative: str | None, expected: str
) -> None:
    assert generator.choose(None, prompt, negative).scene == expected


def test_a_negative_prompt_against_studio_moves_even_an_empty_prompt() -> None:
    chooser = ProceduralScenes().chooser
    assert chooser.choose("", "plain studio backdrop").scene != STUDIO
    assert chooser.choose("a photo", "plain studio backdrop").scene != STUDIO
    assert chooser.choose("a sunny beach").scene == "beach"
    assert chooser.choose("a sunny beach", "sand").scene != "beach"


def test_the_library_covers_what_product_photographers_ask_for() -> None:
    names = {scene.name for scene in LIBRARY}
    assert len(names) == len(LIBRARY) >= 16
    assert set(PRESETS) <= names
    assert {"beach", "snow", "forest", "garden", "sky", "city"} <= names
    assert {"counter", "cafe", "living-room", "bathroom"} <= names
    assert {"marble", "wood", "wood-dark", "industrial", "linen", "stone", "paper"} <= names
    assert {"studio", "gradient", "podium"} <= names
    assert all(len(scene.phrases) >= 3 for scene in LIBRARY)


def test_colour_words_are_found_in_order() -> None:
    assert colours_in("Pink and GOLD, a pink podium") == ("pink", "gold")
    assert colours_in("a beach") == ()


def mean_rgb(image: np.ndarray, rows: slice) -> np.ndarray:
    return image[rows].reshape(-1, 3).astype(np.float64).mean(axis=0)


def test_the_beach_has_a_blue_sky_above_and_sand_below(generator: ProceduralScenes) -> None:
    backdrop = generator.backdrop(
        subject_canvas(),
        scene=None,
        prompt="a sunny beach with blue sky and golden sand",
        negative_prompt=None,
        seed=5,
    )
    assert backdrop.scene == "beach"
    r, g, b = mean_rgb(backdrop.image, slice(0, SIZE // 6))
    assert b > r + 40 and b > g  # sky
    r, g, b = mean_rgb(backdrop.image, slice(SIZE * 5 // 6, SIZE))
    assert r > g > b + 30 and r > 150  # sand
    # The colour words describe the beach itself: they do not tint it.
    plain = generator.backdrop(
        subject_canvas(), scene=None, prompt="a sunny beach", negative_prompt=None, seed=5
    )
    np.testing.assert_array_equal(plain.image, backdrop.image)


def test_colour_words_colour_a_backdrop_and_tint_a_scene(generator: ProceduralScenes) -> None:
    def image(prompt: str) -> np.ndarray:
        out = generator.backdrop(
            subject_canvas(), scene=None, prompt=prompt, negative_prompt=None, seed=2
        )
        return out.image

    pink = mean_rgb(image("solid pink studio backdrop"), slice(0, SIZE // 4))
    blue = mean_rgb(image("solid blue studio backdrop"), slice(0, SIZE // 4))
    assert pink[0] > pink[2] + 30 and blue[2] > blue[0] + 60
    marble = mean_rgb(image("a marble slab"), slice(SIZE // 2, SIZE))
    green = mean_rgb(image("a green marble slab"), slice(SIZE // 2, SIZE))
    assert green[1] - green[0] > marble[1] - marble[0] + 10
    # A tint, not a repaint: the marble keeps its brightness.
    assert abs(green.mean() - marble.mean()) < 20


def test_a_prompt_is_reproducible_and_the_seed_varies_it(generator: ProceduralScenes) -> None:
    def draw(seed: int) -> np.ndarray:
        return generator.background(
            subject_canvas(), scene=None, prompt="on fresh snow", negative_prompt=None, seed=seed
        )

    np.testing.assert_array_equal(draw(3), draw(3))
    assert np.abs(draw(3).astype(np.int16) - draw(4)).mean() > 1


def test_the_text_encoder_embeds_like_all_minilm() -> None:
    encoder = MiniLmEncoder()
    vectors = encoder.embed(["golden sand by the sea", "a sunny beach", "a snowy mountain"])
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2
    # Dynamic padding: a text embeds the same alone and beside a longer one.
    alone = encoder.embed(["a sunny beach"])[0]
    assert float(alone @ vectors[1]) > 0.9999
    assert encoder.embed([]).shape == (0, 384)


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


@pytest.mark.parametrize(
    ("prompt", "light"), [("plain studio backdrop", -1.0), ("a sunny beach", 1.0)]
)
def test_the_shadow_and_the_relight_agree_with_the_scenes_light(
    generator: ProceduralScenes, prompt: str, light: float
) -> None:
    """The key light's side: the backdrop is brighter there, the cast shadow falls to the other
    side, and the subject is a little brighter on the lit side."""
    subject = np.zeros((320, 220, 4), np.uint8)
    subject[10:-10, 10:-10] = (128, 128, 128, 255)  # mid grey, transparent around
    placement = Placement(scale=0.4, y_center=0.55)
    canvas = place_subject(subject, scale=0.4, x_center=0.5, y_center=0.55)
    box = subject_box(canvas[..., 3], threshold=127, min_fraction=0)
    assert box is not None
    result = compose_scene(
        subject,
        segmenter=Unused(),
        generator=generator,
        placement=placement,
        scene=SceneRequest(prompt=prompt, seed=1),
    )
    backdrop = generator.backdrop(canvas, scene=None, prompt=prompt, negative_prompt=None, seed=1)
    assert backdrop.light == light and result.scene == backdrop.scene
    # The floor behind the subject's foot, beside it: darkened on the side away from the light.
    darkening = backdrop.image.astype(np.float64) - result.image
    band = slice(box.bottom - 60, box.bottom - 5)
    right = darkening[band, box.right + 5 : box.right + 60].mean()
    left = darkening[band, box.left - 60 : box.left - 5].mean()
    assert (right - left) * -light > 3
    # The surface, in front: brighter towards the light.
    floor_left, floor_right = (
        backdrop.image[-120:, :300].mean(),
        backdrop.image[-120:, -300:].mean(),
    )
    assert (floor_left - floor_right) * -light > 1
    # The subject: brighter on the lit side, and never more than gently.
    row = result.image[(box.top + box.bottom) // 2]
    near_left = row[box.left + 5 : box.left + 25].mean()
    near_right = row[box.right - 25 : box.right - 5].mean()
    assert (near_left - near_right) * -light > 5
    assert np.abs(row[box.left + 5 : box.right - 5].astype(np.float64) - 128).max() < 20


class Unused:
    def mask(self, rgb: np.ndarray) -> np.ndarray:
        raise AssertionError("an RGBA subject is not segmented")
