"""Trim, placement, contact shadow and composite, on images whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from retouch.ops.compose import composite, contact_shadow, place_subject, trim_to_alpha

RED = (200, 30, 40)


def solid(h: int, w: int, colour: tuple[int, int, int] = RED) -> np.ndarray:
    """An opaque ``h`` x ``w`` block of one colour."""
    rgba = np.zeros((h, w, 4), np.uint8)
    rgba[...] = (*colour, 255)
    return rgba


def covered(canvas: np.ndarray) -> tuple[float, float, int, int]:
    """Centre (x, y) and extent (width, height) of the canvas's opaque-ish pixels."""
    rows, cols = np.nonzero(canvas[..., 3] > 127)
    return (
        (cols.min() + cols.max() + 1) / 2,
        (rows.min() + rows.max() + 1) / 2,
        int(cols.max() + 1 - cols.min()),
        int(rows.max() + 1 - rows.min()),
    )


def test_trim_to_alpha_is_exact() -> None:
    rgba = np.zeros((60, 80, 4), np.uint8)
    rgba[10:30, 20:50] = (*RED, 255)
    rgba[45, 70] = (1, 2, 3, 1)  # the faintest pixel still counts
    trimmed = trim_to_alpha(rgba)
    assert trimmed.shape == (36, 51, 4)
    np.testing.assert_array_equal(trimmed, rgba[10:46, 20:71])


def test_trim_to_alpha_keeps_a_transparent_image_whole() -> None:
    rgba = np.zeros((20, 30, 4), np.uint8)
    trimmed = trim_to_alpha(rgba)
    np.testing.assert_array_equal(trimmed, rgba)
    assert not np.shares_memory(trimmed, rgba)


@pytest.mark.parametrize(
    ("size", "scale", "x_center", "y_center"),
    [
        ((300, 300), 1.0, 0.5, 0.5),  # enlarged to fill the canvas
        ((300, 300), 0.6, 0.5, 0.5),
        ((300, 300), 0.25, 0.3, 0.7),
        ((2000, 2000), 0.37, 0.62, 0.41),  # shrunk
        ((120, 360), 0.5, 0.45, 0.55),  # landscape: the width is the longest edge
        ((400, 100), 0.8, 0.5, 0.45),  # portrait
    ],
)
def test_place_subject_puts_the_subject_where_the_transform_says(
    size: tuple[int, int], scale: float, x_center: float, y_center: float
) -> None:
    canvas = place_subject(solid(*size), scale=scale, x_center=x_center, y_center=y_center)
    assert canvas.shape == (1024, 1024, 4) and canvas.dtype == np.uint8
    cx, cy, width, height = covered(canvas)
    assert abs(cx - x_center * 1024) <= 1 and abs(cy - y_center * 1024) <= 1
    assert abs(max(width, height) - scale * 1024) <= 1
    assert abs(width / height - size[1] / size[0]) < 0.02
    # Fully inside, the subject keeps its colour exactly; nothing else is covered.
    inner = canvas[..., 3] == 255
    assert (canvas[inner, :3] == RED).all()
    assert canvas[..., 3].astype(bool).sum() <= (width + 2) * (height + 2)


def test_place_subject_fits_a_non_square_canvas() -> None:
    canvas = place_subject(
        solid(100, 100), canvas_size=(512, 1024), scale=1, x_center=0.5, y_center=0.5
    )
    assert canvas.shape == (512, 1024, 4)
    cx, cy, width, height = covered(canvas)
    assert (width, height) == (512, 512) and (cx, cy) == (512, 256)


@pytest.mark.parametrize(
    ("scale", "x_center", "y_center"), [(1.5, 0.0, 1.0), (3.0, 1.0, 0.0), (0.2, 0.0, 0.0)]
)
def test_place_subject_clips_at_the_canvas_edges(
    scale: float, x_center: float, y_center: float
) -> None:
    canvas = place_subject(solid(200, 200), scale=scale, x_center=x_center, y_center=y_center)
    assert canvas.shape == (1024, 1024, 4)
    # The centre is on a corner, so a quarter of the subject shows, up to the whole canvas.
    visible = min(scale * 1024 / 2, 1024)
    rows, cols = np.nonzero(canvas[..., 3] > 127)
    assert abs(rows.size - visible * visible) <= 2 * visible + 1
    assert (cols.min() if x_center == 0 else 1023 - cols.max()) == 0
    assert (rows.min() if y_center == 0 else 1023 - rows.max()) == 0


def test_place_subject_does_not_bleed_hidden_colours_into_the_edge() -> None:
    """A cut-out keeps the old background's colours under alpha 0; they must not show."""
    rgba = np.zeros((90, 90, 4), np.uint8)
    rgba[...] = (0, 255, 0, 0)
    rgba[20:70, 20:70] = (*RED, 255)
    for scale in (0.33, 0.87, 2.3):
        canvas = place_subject(rgba, scale=scale, x_center=0.5, y_center=0.5)
        seen = canvas[..., 3] > 0
        # Straight resizing would give half-covered edge pixels a green of ~140; bicubic
        # ringing alone moves a channel by a few levels.
        assert np.abs(canvas[seen, :3].astype(int) - RED).max() <= 10
        assert (canvas[~seen, :3] == 0).all()


@pytest.mark.parametrize("scale", [0, -1, float("nan"), float("inf")])
def test_place_subject_refuses_a_bad_scale(scale: float) -> None:
    with pytest.raises(ValueError, match="scale"):
        place_subject(solid(10, 10), scale=scale, x_center=0.5, y_center=0.5)


def test_contact_shadow_darkens_just_below_the_subject() -> None:
    canvas = np.zeros((1024, 1024, 4), np.uint8)
    canvas[300:600, 400:600] = (*RED, 255)
    shadow = contact_shadow(canvas)
    assert shadow.shape == (1024, 1024) and shadow.dtype == np.float32
    assert 0 <= shadow.min() and shadow.max() <= 1
    below = shadow[600:612, 420:580]
    assert below.mean() > 0.2
    assert shadow[:300].max() == 0  # nothing above the subject
    assert shadow[280:560, :380].max() == 0 and shadow[280:560, 620:].max() == 0  # nor beside it
    assert shadow[700:].max() < 0.02  # and it stays near the foot
    assert shadow[605, 500] > shadow[605, 390] > shadow[605, 300]  # soft at the sides
    assert contact_shadow(canvas, strength=0.3).max() == pytest.approx(shadow.max() / 2, rel=1e-3)


def test_contact_shadow_of_an_empty_canvas_is_nothing() -> None:
    shadow = contact_shadow(np.zeros((64, 96, 4), np.uint8))
    assert shadow.shape == (64, 96) and not shadow.any()


def test_composite_keeps_the_subject_and_the_background_exact() -> None:
    rng = np.random.default_rng(0)
    background = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    canvas = np.zeros((64, 64, 4), np.uint8)
    canvas[10:30, 10:30, :3] = rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)
    canvas[10:30, 10:30, 3] = 255
    canvas[40, 40] = (250, 0, 0, 128)
    shadow = np.zeros((64, 64), np.float32)
    shadow[50:60, 50:60] = 0.5
    out = composite(background, canvas, shadow)
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[10:30, 10:30], canvas[10:30, 10:30, :3])
    np.testing.assert_array_equal(out[:5], background[:5])
    expected = np.array([250, 0, 0]) * 128 / 255 + background[40, 40].astype(float) * 127 / 255
    assert np.abs(out[40, 40] - expected).max() <= 0.5
    darkened = np.rint(background[50:60, 50:60] * 0.5)
    assert np.abs(out[50:60, 50:60].astype(int) - darkened).max() <= 1


def test_composite_refuses_mismatched_sizes() -> None:
    with pytest.raises(ValueError, match="sizes differ"):
        composite(
            np.zeros((10, 10, 3), np.uint8),
            np.zeros((10, 12, 4), np.uint8),
            np.zeros((10, 10), np.float32),
        )
