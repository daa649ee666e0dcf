"""Retouch: self-hosted image editing, wire-compatible with the Pixelcut API."""

__version__ = "0.1.0"
