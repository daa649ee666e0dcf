"""What each operation costs, from settings (Pixelcut documents only the surcharges)."""

from __future__ import annotations

from dataclasses import dataclass

from retouch.config import Settings


@dataclass(frozen=True)
class Pricing:
    remove_background: int = 1
    shadow: int = 3
    generate_background: int = 1
    upscale: int = 1
    outpaint: int = 1
    try_on: int = 1
    garment_extraction: int = 5

    @classmethod
    def from_settings(cls, settings: Settings) -> Pricing:
        return cls(
            remove_background=settings.price_remove_background,
            shadow=settings.price_shadow,
            generate_background=settings.price_generate_background,
            upscale=settings.price_upscale,
            outpaint=settings.price_outpaint,
            try_on=settings.price_try_on,
            garment_extraction=settings.price_garment_extraction,
        )

    def remove_background_price(self, *, shadow: bool) -> int:
        return self.remove_background + (self.shadow if shadow else 0)

    def try_on_price(self, *, garment_extraction: bool) -> int:
        return self.try_on + (self.garment_extraction if garment_extraction else 0)
