"""Parsed operation parameters: plain value types the request models build and the ops read.

They sit below both ``retouch.schemas`` and ``retouch.ops`` so that the request models (which the
client imports) need no numpy or OpenCV, and the ops need no pydantic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple


class MarginSpec(NamedTuple):
    """A parsed margin: ``"12%"`` is ``MarginSpec(12, "%")``, ``"30px"`` is ``(30, "px")``."""

    value: float
    unit: Literal["%", "px"]


NO_MARGIN = MarginSpec(0, "px")


@dataclass(frozen=True)
class ShadowSpec:
    opacity: float = 0.5
    light_size: float = 0.3
    light_x: float = -0.3
    light_y: float = -0.6
    light_z: float = 0.7


@dataclass(frozen=True)
class CropSpec:
    left: MarginSpec = NO_MARGIN
    top: MarginSpec = NO_MARGIN
    right: MarginSpec = NO_MARGIN
    bottom: MarginSpec = NO_MARGIN
