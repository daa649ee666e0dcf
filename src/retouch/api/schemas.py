"""Request models, one per operation, mirroring Pixelcut's documented fields and defaults.

The same models validate requests and describe them in the OpenAPI document.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer

from retouch.ops.cutout import NO_MARGIN, MarginSpec
from retouch.ops.remove_background import CropSpec, ShadowSpec

ImageUrl = Annotated[
    str,
    Field(
        max_length=2048,
        description="Public URL of the image (http or https). In multipart requests an uploaded "
        "`image` file part may be sent instead; if both are sent, the file wins.",
        examples=["https://cdn3.pixelcut.app/product.jpg"],
    ),
]


class RequestModel(BaseModel):
    # Unknown fields are ignored, as Pixelcut does, so clients that send more keep working.
    model_config = ConfigDict(extra="ignore")


_MARGIN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(%|px)\s*$")


def _parse_margin(raw: Any) -> Any:
    if isinstance(raw, MarginSpec):
        return raw
    if not isinstance(raw, str):
        raise ValueError("must be a string such as '10%' or '100px'")
    match = _MARGIN.match(raw)
    if match is None:
        raise ValueError(f"{raw!r} is not a margin; use 'N%' (0 to 49) or 'Npx' (0 or more)")
    value, unit = float(match.group(1)), match.group(2)
    if unit == "%" and value > 49:
        raise ValueError(f"{raw!r} is over the 49% maximum")
    return MarginSpec(value, unit)


Margin = Annotated[
    MarginSpec,
    BeforeValidator(_parse_margin, json_schema_input_type=str),
    PlainSerializer(lambda m: f"{m.value:g}{m.unit}", return_type=str),
    Field(
        description='(Beta) "N%" (0–49, of the subject box\'s size on that axis) or "Npx" (0 or '
        "more). Applies only when `crop` is true.",
        examples=["100px", "10%"],
    ),
]


class LightPosition(RequestModel):
    x: float = Field(default=-0.3, ge=-1, le=1, description="Left (-1) to right (1) of centre.")
    y: float = Field(default=-0.6, ge=-1, le=1, description="Top (-1) to bottom (1) of centre.")
    z: float = Field(default=0.7, ge=0, le=2, description="Height above the subject.")


class LightSource(RequestModel):
    size: float = Field(
        default=0.3, ge=0, le=1, description="Emitter size: larger is a softer penumbra."
    )
    position: LightPosition = Field(default_factory=LightPosition)


class ShadowParameter(RequestModel):
    enabled: bool = Field(description="Turn shadow rendering on.")
    opacity: float = Field(default=0.5, ge=0, le=1, description="Final shadow opacity.")
    light_source: LightSource = Field(default_factory=LightSource)


def _shadow_shorthand(raw: Any) -> Any:
    # Pixelcut's docs say "pass true" for automatic shadow estimation.
    if isinstance(raw, bool):
        return {"enabled": raw}
    if isinstance(raw, str) and raw.strip().lower() in ("true", "false"):
        return {"enabled": raw.strip().lower() == "true"}
    return raw


Shadow = Annotated[
    ShadowParameter,
    BeforeValidator(_shadow_shorthand, json_schema_input_type=bool | ShadowParameter),
    Field(description="AI shadow under the subject (+3 credits); `true` for the defaults."),
]


class RemoveBackgroundRequest(RequestModel):
    image_url: ImageUrl | None = None
    format: Literal["png"] = Field(default="png", description="Only PNG is supported.")
    shadow: Shadow | None = None
    crop: bool = Field(default=False, description="Crop to the detected subject.")
    margin: Margin | None = None
    margin_left: Margin | None = None
    margin_right: Margin | None = None
    margin_top: Margin | None = None
    margin_bottom: Margin | None = None

    @property
    def shadow_enabled(self) -> bool:
        return self.shadow is not None and self.shadow.enabled

    def crop_spec(self) -> CropSpec | None:
        if not self.crop:
            return None
        default = self.margin or NO_MARGIN
        return CropSpec(
            left=self.margin_left or default,
            top=self.margin_top or default,
            right=self.margin_right or default,
            bottom=self.margin_bottom or default,
        )

    def shadow_spec(self) -> ShadowSpec | None:
        if self.shadow is None or not self.shadow.enabled:
            return None
        light = self.shadow.light_source
        return ShadowSpec(
            opacity=self.shadow.opacity,
            light_size=light.size,
            light_x=light.position.x,
            light_y=light.position.y,
            light_z=light.position.z,
        )
