"""What each operation costs, from settings (Pixelcut documents only the surcharges)."""

from __future__ import annotations

from retouch.config import Settings


class Pricing:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def remove_background(self, *, shadow: bool) -> int:
        s = self._settings
        return s.price_remove_background + (s.price_shadow if shadow else 0)

    def upscale(self) -> int:
        return self._settings.price_upscale

    def outpaint(self) -> int:
        return self._settings.price_outpaint

    def generate_background(self) -> int:
        return self._settings.price_generate_background

    def try_on(self, *, garment_extraction: bool) -> int:
        s = self._settings
        return s.price_try_on + (s.price_garment_extraction if garment_extraction else 0)
