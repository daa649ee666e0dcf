"""Install-time facts the service relies on."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys

import cv2
import numpy as np


def test_both_opencv_wheels_agree_and_cv2_works() -> None:
    # Two packages write cv2/ (see pyproject.toml); they must be one release so its files match.
    versions = {
        importlib.metadata.version(name) for name in ("opencv-python", "opencv-python-headless")
    }
    assert len(versions) == 1, versions
    assert cv2.__version__ == next(iter(versions)).rsplit(".", 1)[0]
    image = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    ok, png = cv2.imencode(".png", image)
    assert ok and np.array_equal(cv2.imdecode(png, cv2.IMREAD_COLOR), image)
    assert cv2.resize(cv2.GaussianBlur(image, (5, 5), 0), (32, 32)).shape == (32, 32, 3)


def test_importing_the_app_loads_no_model_and_no_torch() -> None:
    code = (
        "import sys, retouch.app, retouch.cli; "
        "print(sorted(m for m in ('torch', 'diffusers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
