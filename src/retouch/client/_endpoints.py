"""The API's operations, written once for both clients.

Each method builds its ``Call`` and hands it to ``_run``, which the sync client answers with the
value and the async client with an awaitable of it; the type parameters say which, so
``client.upscale(...)`` is a ``Result`` and ``await aclient.upscale(...)`` one too.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, Generic, Literal, TypeVar, cast

from retouch.client._wire import Call, ImageInput, ResultForm, credits_call, image_call
from retouch.schemas import (
    GenerateBackgroundRequest,
    ImageTransform,
    OutpaintRequest,
    RemoveBackgroundRequest,
    ShadowParameter,
    UpscaleRequest,
)

IntT = TypeVar("IntT")
ResultT = TypeVar("ResultT")


class Endpoints(ABC, Generic[IntT, ResultT]):
    @abstractmethod
    def _run(self, call: Call[Any]) -> Any:
        """Send ``call`` with retries; its parsed value (sync) or an awaitable of it (async)."""

    def _result(self, call: Call[Any]) -> ResultT:
        # What _run answers for an image call is the subclass's ResultT (a value or awaitable).
        return cast(ResultT, self._run(call))

    def credits(self) -> IntT:
        """The credits left on the account (free)."""
        return cast(IntT, self._run(credits_call()))

    def remove_background(
        self,
        image: ImageInput,
        *,
        crop: bool = False,
        margin: str | None = None,
        margin_left: str | None = None,
        margin_right: str | None = None,
        margin_top: str | None = None,
        margin_bottom: str | None = None,
        shadow: bool | ShadowParameter | Mapping[str, Any] | None = None,
        as_: ResultForm = "url",
        idempotency_key: str | None = None,
    ) -> ResultT:
        """Cut the subject out onto transparency (PNG).

        Margins (``"N%"`` or ``"Npx"``) apply only with ``crop``; ``shadow`` (``True`` or a
        ``ShadowParameter``) costs 3 credits more.
        """
        fields = {
            "crop": crop,
            "margin": margin,
            "margin_left": margin_left,
            "margin_right": margin_right,
            "margin_top": margin_top,
            "margin_bottom": margin_bottom,
            "shadow": shadow,
        }
        return self._result(
            image_call(
                "/v1/remove-background",
                RemoveBackgroundRequest,
                image,
                fields,
                as_=as_,
                idempotency_key=idempotency_key,
            )
        )

    def upscale(
        self,
        image: ImageInput,
        *,
        scale: int = 2,
        as_: ResultForm = "url",
        idempotency_key: str | None = None,
    ) -> ResultT:
        """Enlarge 2x or 4x (JPEG, or PNG when the input has transparency)."""
        return self._result(
            image_call(
                "/v1/upscale",
                UpscaleRequest,
                image,
                {"scale": scale},
                as_=as_,
                idempotency_key=idempotency_key,
            )
        )

    def outpaint(
        self,
        image: ImageInput,
        *,
        left: int = 0,
        top: int = 0,
        right: int = 0,
        bottom: int = 0,
        creativity: float = 0,
        output_format: Literal["jpeg", "png"] = "jpeg",
        as_: ResultForm = "url",
        idempotency_key: str | None = None,
    ) -> ResultT:
        """Extend the canvas by up to 2000 px on each side (at least one side > 0)."""
        fields = {
            "left": left,
            "top": top,
            "right": right,
            "bottom": bottom,
            "creativity": creativity,
            "output_format": output_format,
        }
        return self._result(
            image_call(
                "/v1/outpaint",
                OutpaintRequest,
                image,
                fields,
                as_=as_,
                idempotency_key=idempotency_key,
            )
        )

    def generate_background(
        self,
        image: ImageInput,
        *,
        image_transform: ImageTransform | Mapping[str, float] | None = None,
        scene: str | None = None,
        prompt: str | None = None,
        negative_prompt: str | None = None,
        seed: int | None = None,
        as_: ResultForm = "url",
        idempotency_key: str | None = None,
    ) -> ResultT:
        """Place the subject on a new 1024x1024 scene (JPEG).

        ``scene`` is one of marble, wood, industrial, linen, brick, counter and overrides the
        prompts; ``seed`` is a Retouch extension (another variation of the same request).
        """
        fields = {
            "image_transform": image_transform,
            "scene": scene,
            "prompt": prompt,
            "negative_prompt": negative_prompt,
            "seed": seed,
        }
        return self._result(
            image_call(
                "/v1/generate-background",
                GenerateBackgroundRequest,
                image,
                fields,
                as_=as_,
                idempotency_key=idempotency_key,
            )
        )
