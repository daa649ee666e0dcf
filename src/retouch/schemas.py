"""Request models, one per operation, mirroring Pixelcut's documented fields and defaults.

The same models validate requests and describe them in the OpenAPI document.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from retouch.specs import NO_MARGIN, CropSpec, MarginSpec, ShadowSpec

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
    """Base of every request model, nested ones included.

    An unknown field is refused (400 ``invalid_parameter`` naming it) rather than ignored: a
    misspelt or misencoded field would otherwise be charged for and silently not applied. JSON
    ``null`` means "not given", so the field takes its default (or is missing, if required).
    """

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _null_is_not_given(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {name: value for name, value in data.items() if value is not None}
        return data


def spec_error(exc: ValidationError) -> tuple[str, str]:
    """``(error_code, message)`` of the 400 for a request model's validation failure.

    Shared by the server and the client's check before sending, so both say the same words.
    """
    errors = exc.errors(include_url=False)
    # An unknown field first: it is usually the cause of the rest (`{"enabld": true}` also
    # lacks `enabled`), and the client should learn it is not read.
    first = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    field = ".".join(str(part) for part in first["loc"])
    if len(field) > 80:  # an unknown key is the client's text, of any length
        field = f"{field[:80]}..."
    if first["type"] == "missing":
        return "missing_parameter", f"{field} is required"
    if first["type"] == "extra_forbidden":
        return "invalid_parameter", f"Unknown field {field}"
    message = first["msg"].removeprefix("Value error, ")
    if not field:  # a rule across fields
        return "invalid_parameter", message[:1].upper() + message[1:]
    return "invalid_parameter", f"Invalid {field}: {message}"


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
    return MarginSpec(value, "%" if unit == "%" else "px")


Margin = Annotated[
    MarginSpec,
    BeforeValidator(_parse_margin, json_schema_input_type=str),
    PlainSerializer(lambda m: f"{m.value:g}{m.unit}", return_type=str),
    Field(
        description='(Beta) "N%" (0–49, of the subject box\'s size on that axis) or "Npx" (0 or '
        "more). Applies only when `crop` is true. Where the result would pass the output size "
        "limit, that axis's margins shrink in proportion to fit.",
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


_BOOLEAN = TypeAdapter(bool)


def _shadow_shorthand(raw: Any) -> Any:
    # Pixelcut's docs say "pass true" for automatic shadow estimation. Any spelling that `crop`
    # takes as a boolean ("1", "yes", "off") is one here too.
    if isinstance(raw, dict | ShadowParameter):
        return raw
    try:
        return {"enabled": _BOOLEAN.validate_python(raw.strip() if isinstance(raw, str) else raw)}
    except ValidationError:
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


def _two_or_four(value: int) -> int:
    if value not in (2, 4):
        raise ValueError("must be 2 or 4")
    return value


class UpscaleRequest(RequestModel):
    image_url: ImageUrl | None = None
    # An int checked afterwards rather than Literal[2, 4]: multipart sends "2", which lax int
    # parsing accepts and Literal does not.
    scale: Annotated[int, AfterValidator(_two_or_four)] = Field(
        default=2,
        description="The scale factor: 2 or 4 (Pixelcut documents no default; Retouch uses 2).",
        json_schema_extra={"enum": [2, 4]},
    )


Extension = Annotated[int, Field(ge=0, le=2000)]


class OutpaintRequest(RequestModel):
    image_url: ImageUrl | None = None
    left: Extension = Field(default=0, description="Pixels to add on the left (0-2000).")
    top: Extension = Field(default=0, description="Pixels to add at the top (0-2000).")
    right: Extension = Field(default=0, description="Pixels to add on the right (0-2000).")
    bottom: Extension = Field(default=0, description="Pixels to add at the bottom (0-2000).")
    creativity: float = Field(
        default=0, ge=0, le=1, description="0 = most coherent with the image, 1 = most varied."
    )
    output_format: Literal["jpeg", "png"] = Field(default="jpeg")

    @model_validator(mode="after")
    def _extends_somewhere(self) -> OutpaintRequest:
        if not (self.left or self.top or self.right or self.bottom):
            raise ValueError("at least one of left, top, right and bottom must be greater than 0")
        return self


class ImageTransform(RequestModel):
    scale: float | None = Field(
        default=None,
        gt=0,
        le=10,
        description="1 = the subject's longest edge fits the canvas. Default 1, or 0.6 when the "
        "background was removed for you (the subject is then trimmed to its alpha).",
    )
    x_center: float = Field(default=0.5, ge=0, le=1, description="Subject centre, 0 = left.")
    y_center: float = Field(default=0.5, ge=0, le=1, description="Subject centre, 0 = top.")


class GenerateBackgroundRequest(RequestModel):
    image_url: ImageUrl | None = None
    image_transform: ImageTransform = Field(default_factory=ImageTransform)
    scene: Literal["marble", "wood", "industrial", "linen", "brick", "counter"] | None = Field(
        default=None, description="A preset scene; when given, the prompts are ignored."
    )
    prompt: str | None = Field(default=None, max_length=1000, description="The scene wanted.")
    negative_prompt: str | None = Field(
        default=None, max_length=1000, description="Comma-separated things to avoid."
    )
    seed: int | None = Field(
        default=None,
        ge=0,
        le=2**31 - 1,
        description="(Retouch) Fixes the scene's randomness; by default it is derived from the "
        "request, so the same request gives the same image.",
    )


class TryOnRequest(RequestModel):
    person_image_url: Annotated[str, Field(max_length=2048)] | None = Field(
        default=None, description="URL of the person's image (or a `person_image` file part)."
    )
    garment_image_url: Annotated[str, Field(max_length=2048)] | None = Field(
        default=None, description="URL of the garment image (or a `garment_image` file part)."
    )
    garment_mode: Literal["auto", "full", "upper", "lower"] = Field(
        default="auto",
        description="auto-detect, full body (dresses), upper (shirts, jackets) or lower (pants).",
    )
    preprocess_garment: bool = Field(
        default=True,
        description="Cut the garment out of its image first (+5 credits when the garment image "
        "has no transparency, i.e. extraction is needed).",
    )
    remove_background: bool = Field(
        default=False, description="Return the dressed person on a transparent background (PNG)."
    )
    webhook_url: Annotated[str, Field(max_length=2048)] | None = Field(
        default=None,
        description="(Retouch) When the job ends, its document is POSTed here, signed with the "
        "account's webhook key (header Retouch-Signature).",
    )
    wait_for_result: bool = Field(
        default=True,
        description="true: wait (up to a minute) and answer with `result_url`; false: answer "
        "202 with a `job_id` to poll at GET /v1/try-on/job/{jobId}.",
    )
