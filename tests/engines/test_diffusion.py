"""The diffusers engine's real loading and inference code, run on a tiny random pipeline.

No diffusion weights can be downloaded here, so the test builds a Stable-Diffusion-shaped
inpainting pipeline from configs (a 9-channel UNet, a VAE, a CLIP text encoder and a tokenizer
with a 58-token vocabulary, all randomly initialised, about 0.5 MB), saves it the way real weights
are laid out, and loads it through ``DiffusionInpainter``. Its pictures are noise; what is
tested is the plumbing: offline loading, sizes, masks, seeds and prompts.
"""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pytest

from retouch.engines.diffusion import DiffusionInpainter
from retouch.engines.filler import create_filler
from tests.utils.diffusion import build_tiny_pipeline

# transformers logs (not warns) about torchvision and accelerate; nothing here raises a Python
# warning with the versions pinned in the generative extra, so no filter is needed.
pytestmark = pytest.mark.slow

STEPS = 2


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tiny-inpainting")
    build_tiny_pipeline(folder)
    return folder


@pytest.fixture(scope="module")
def inpainter(weights: Path) -> DiffusionInpainter:
    return DiffusionInpainter(weights, threads=1, steps=STEPS)


def test_missing_weights_are_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="model_index.json"):
        DiffusionInpainter(tmp_path / "nowhere", threads=1)
    with pytest.raises(FileNotFoundError, match="never downloaded"):
        DiffusionInpainter(tmp_path, threads=1)  # exists, but holds no pipeline


def test_loads_without_touching_the_network(weights: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the engine tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    engine = DiffusionInpainter(weights, threads=1, steps=STEPS)
    assert type(engine.pipeline).__name__ == "StableDiffusionInpaintPipeline"
    # UNet sample size 16 times the VAE's factor 2.
    assert (engine.native_side, engine.multiple) == (32, 2)


def test_registry_creates_it(weights: Path) -> None:
    filler = create_filler("diffusion", threads=1, weights_path=weights, steps=STEPS)
    assert isinstance(filler, DiffusionInpainter) and filler.steps == STEPS


@pytest.mark.parametrize("shape", [(64, 64), (70, 131)], ids=["square", "odd"])
def test_fill_contract(inpainter: DiffusionInpainter, shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    mask = np.zeros(shape, bool)
    mask[:, -shape[1] // 3 :] = True
    mask[:5] = True
    out = inpainter.fill(image, mask, creativity=0, seed=1)
    assert out.shape == image.shape and out.dtype == np.uint8
    assert np.array_equal(out[~mask], image[~mask])
    assert np.array_equal(inpainter.fill(image, mask, creativity=0, seed=1), out)
    assert not np.array_equal(inpainter.fill(image, mask, creativity=0, seed=2), out)
    assert not np.array_equal(inpainter.fill(image, mask, creativity=1, seed=1), out)


def test_fill_without_a_hole_is_a_copy(inpainter: DiffusionInpainter) -> None:
    image = np.full((64, 64, 3), 7, np.uint8)
    assert np.array_equal(
        inpainter.fill(image, np.zeros((64, 64), bool), creativity=0, seed=0), image
    )


def test_background_contract(inpainter: DiffusionInpainter) -> None:
    canvas = np.zeros((64, 96, 4), np.uint8)
    canvas[16:48, 30:60] = (200, 30, 30, 255)  # the opaque subject
    canvas[16:48, 60] = (200, 30, 30, 128)  # a soft edge: repainted, the scene shows through
    scene = inpainter.background(canvas, scene="marble", prompt=None, negative_prompt=None, seed=3)
    assert scene.shape == (64, 96, 3) and scene.dtype == np.uint8
    assert (scene[16:48, 30:60] == (200, 30, 30)).all()
    assert not (scene[16:48, 60] == (200, 30, 30)).all()
    again = inpainter.background(
        canvas, scene="marble", prompt="ignored", negative_prompt="ignored", seed=3
    )
    assert np.array_equal(again, scene)  # a scene replaces the prompts, as in Pixelcut
    prompted = inpainter.background(
        canvas, scene=None, prompt="a red brick wall", negative_prompt="blue", seed=3
    )
    assert not np.array_equal(prompted, scene)
    assert np.array_equal(
        inpainter.background(
            canvas, scene=None, prompt="a red brick wall", negative_prompt="blue", seed=3
        ),
        prompted,
    )


def test_background_rejects_unknown_scenes_and_bad_canvases(
    inpainter: DiffusionInpainter,
) -> None:
    canvas = np.zeros((64, 64, 4), np.uint8)
    with pytest.raises(ValueError, match="unknown scene 'beach'; known: marble, wood"):
        inpainter.background(canvas, scene="beach", prompt=None, negative_prompt=None, seed=0)
    with pytest.raises(ValueError, match="HxWx4"):
        inpainter.background(canvas[..., :3], scene=None, prompt=None, negative_prompt=None, seed=0)
