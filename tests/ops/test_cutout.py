"""Cut-out, subject box, crop with margins and cast shadow, on images whose answer is known."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from retouch.ops.cutout import (
    Box,
    Margins,
    MarginSpec,
    cast_shadow,
    crop_to_subject,
    cutout,
    resolve_margin,
    resolve_margins,
    subject_box,
)

H, W = 240, 320


def product_rgba(centre_x: int = 160) -> np.ndarray:
    """An opaque red product standing on the floor near the bottom of a transparent image."""
    alpha = np.zeros((H, W), np.uint8)
    cv2.rectangle(alpha, (centre_x - 30, 90), (centre_x + 30, 199), 255, -1)
    cv2.circle(alpha, (centre_x, 80), 25, 255, -1)
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[..., 0], rgb[..., 1] = 200, np.arange(W, dtype=np.uint8)[None, :] // 2
    return np.dstack([rgb, alpha])


def test_cutout_keeps_opaque_colours_and_alpha() -> None:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    alpha = np.zeros((H, W), np.float32)
    alpha[50:150, 60:200] = 1
    alpha[50:150, 200:210] = np.linspace(1, 0, 10)
    rgba = cutout(rgb, alpha)
    assert rgba.shape == (H, W, 4) and rgba.dtype == np.uint8
    np.testing.assert_array_equal(rgba[..., 3], np.rint(alpha * 255))
    np.testing.assert_array_equal(rgba[50:150, 60:200, :3], rgb[50:150, 60:200])
    plain = cutout(rgb, alpha, decontaminate=False)
    visible = alpha > 0
    np.testing.assert_array_equal(plain[visible][:, :3], rgb[visible])
    # What is fully transparent carries no trace of the old background.
    assert not plain[~visible].any() and not rgba[~visible].any()


def test_decontamination_removes_the_old_background_from_edges() -> None:
    """A blue subject photographed on red: its soft edge pixels are purple mixes."""
    alpha = np.zeros((H, W), np.float32)
    alpha[:, :150] = 1
    alpha[:, 150:160] = np.linspace(0.9, 0.1, 10)
    blue, red = np.array([30, 60, 220], np.float32), np.array([220, 30, 30], np.float32)
    rgb = np.rint(alpha[..., None] * blue + (1 - alpha[..., None]) * red).astype(np.uint8)
    edge = cutout(rgb, alpha)[:, 150:160, :3].astype(np.float32)
    raw = rgb[:, 150:160].astype(np.float32)
    assert np.abs(edge - blue).mean() < 0.3 * np.abs(raw - blue).mean()


def test_subject_box_is_exact() -> None:
    alpha = np.zeros((H, W), np.float32)
    alpha[40:100, 30:90] = 1
    alpha[120, 200] = 0.6  # one pixel counts when the subject is big enough
    alpha[10, 10] = 0.5  # not above the threshold
    assert subject_box(alpha) == Box(30, 40, 201, 121)
    assert subject_box(alpha, threshold=0.4) == Box(10, 10, 201, 121)


def test_no_subject_when_nothing_or_specks_are_above_threshold() -> None:
    alpha = np.zeros((H, W), np.float32)
    assert subject_box(alpha) is None
    alpha[:, :] = 0.45  # a faint haze everywhere is not a subject
    assert subject_box(alpha) is None
    alpha[100:108, 100:108] = 1  # 64 px < 0.1% of 76800
    assert subject_box(alpha) is None
    alpha[100:109, 100:109] = 1  # 81 px >= 76.8
    assert subject_box(alpha) == Box(100, 100, 109, 109)


def test_pixel_margins_are_exact() -> None:
    assert resolve_margin(MarginSpec(30, "px"), subject=100) == 30
    assert resolve_margin(MarginSpec(0, "px"), subject=100) == 0


def test_percent_margins_are_shares_of_the_subject() -> None:
    # A 120 px subject with 10% each side: 12 px each, a 144 px result.
    assert resolve_margin(MarginSpec(10, "%"), subject=120) == 12
    assert resolve_margin(MarginSpec(0, "%"), subject=120) == 0
    # Half a pixel rounds up: 12.5% of 100 px.
    assert resolve_margin(MarginSpec(12.5, "%"), subject=100) == 13
    # 49% is the most Pixelcut allows: both sides make the result 1.98 times the subject.
    assert resolve_margin(MarginSpec(49, "%"), subject=100) == 49


def test_margins_past_the_output_limit_shrink_in_proportion_per_axis() -> None:
    box = Box(0, 0, 400, 100)
    wide = MarginSpec(49, "%")
    # 400 + 2 * 196 = 792 > 600: 200 px of room split evenly; the height axis is untouched.
    assert resolve_margins(box, left=wide, top=wide, right=wide, bottom=wide, max_side=600) == (
        Margins(100, 49, 100, 49)
    )
    huge, none = MarginSpec(10**9, "px"), MarginSpec(0, "px")
    assert resolve_margins(
        box, left=huge, top=none, right=MarginSpec(3 * 10**9, "px"), bottom=none, max_side=600
    ) == Margins(50, 0, 150, 0)
    # A subject already at the limit gets no margin on that axis.
    assert resolve_margins(
        Box(0, 0, 600, 10), left=huge, top=huge, right=huge, bottom=huge, max_side=600
    ) == Margins(0, 295, 0, 295)
    # Without a limit, what was asked.
    assert resolve_margins(box, left=wide, top=wide, right=wide, bottom=wide) == (
        Margins(196, 49, 196, 49)
    )


@pytest.mark.parametrize("spec", [MarginSpec(50, "%"), MarginSpec(-1, "%"), MarginSpec(-5, "px")])
def test_out_of_range_margins_are_refused(spec: MarginSpec) -> None:
    with pytest.raises(ValueError, match="margin out of range"):
        resolve_margin(spec, subject=100)


def test_crop_with_margins_is_pixel_exact() -> None:
    rgba = product_rgba()
    box = subject_box(rgba[..., 3] / 255)
    assert box == Box(130, 55, 191, 200)
    margins = resolve_margins(
        box,
        left=MarginSpec(20, "px"),
        top=MarginSpec(10, "%"),
        right=MarginSpec(5, "px"),
        bottom=MarginSpec(10, "%"),
    )
    assert margins == Margins(20, 15, 5, 15)  # 10% of the 145 px subject, rounded half up
    out = crop_to_subject(rgba, box, margins)
    assert out.shape == (145 + 30, 61 + 25, 4)
    np.testing.assert_array_equal(out[15:-15, 20:-5], rgba[55:200, 130:191])
    assert subject_box(out[..., 3] / 255) == Box(20, 15, 81, 160)


def test_crop_pads_with_transparency_beyond_the_image() -> None:
    rgba = product_rgba()
    out = crop_to_subject(rgba, Box(0, 0, W, H), Margins(5, 7, 3, 2))
    assert out.shape == (H + 9, W + 8, 4)
    np.testing.assert_array_equal(out[7 : 7 + H, 5 : 5 + W], rgba)
    for border in (out[:7], out[-2:], out[:, :5], out[:, -3:]):
        assert not border.any()


def shadow_only(rgba: np.ndarray, shadowed: np.ndarray) -> np.ndarray:
    """Alpha the shadow adds where there is no subject."""
    return np.where(rgba[..., 3] == 0, shadowed[..., 3], 0).astype(np.float32) / 255


def test_shadow_falls_away_from_the_light() -> None:
    rgba = product_rgba()
    left_light = shadow_only(rgba, cast_shadow(rgba, light_x=-0.6, light_y=-0.6))
    right_light = shadow_only(rgba, cast_shadow(rgba, light_x=0.6, light_y=-0.6))
    assert left_light[:, 160:].sum() > 2 * left_light[:, :160].sum()
    assert right_light[:, :160].sum() > 2 * right_light[:, 160:].sum()
    # A light above the centre is behind the subject: the shadow lies on the floor in front.
    assert left_light[200:].sum() > 2 * left_light[:200].sum()


def test_shadow_sits_under_an_unchanged_subject() -> None:
    rgba = product_rgba()
    out = cast_shadow(rgba, opacity=0.8)
    assert out.shape == rgba.shape and out.dtype == np.uint8
    opaque = rgba[..., 3] == 255
    np.testing.assert_array_equal(out[opaque], rgba[opaque])
    shadow = (rgba[..., 3] == 0) & (out[..., 3] > 0)
    assert shadow.sum() > 1000 and out[shadow][:, :3].max() == 0  # shadows are black
    assert 0.5 < shadow_only(rgba, out).max() <= 0.8 + 1 / 255
    np.testing.assert_array_equal(cast_shadow(rgba, opacity=0), rgba)


def test_larger_light_softens_the_shadow() -> None:
    rgba = product_rgba()
    sharp = shadow_only(rgba, cast_shadow(rgba, light_size=0.0))
    soft = shadow_only(rgba, cast_shadow(rgba, light_size=1.0))
    # About the same amount of shadow, spread wider.
    assert (soft > 0.02).sum() > 1.3 * (sharp > 0.02).sum()
    assert soft.sum() == pytest.approx(sharp.sum(), rel=0.25)


def test_shadow_without_subject_changes_nothing() -> None:
    empty = np.zeros((H, W, 4), np.uint8)
    np.testing.assert_array_equal(cast_shadow(empty), empty)
