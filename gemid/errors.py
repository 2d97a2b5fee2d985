"""Typed refusals. Every bad input maps to one of these, with a message a technician can act on."""

from __future__ import annotations


class GemidInputError(ValueError):
    """An input we refuse. `code` is stable (API clients switch on it); `status` is the HTTP status."""

    code = "bad_input"
    status = 400

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        if status:
            self.status = status


class EmptyFile(GemidInputError):
    code, status = "empty_file", 400


class TooLarge(GemidInputError):
    code, status = "too_large", 413


class TooManyPixels(GemidInputError):
    code, status = "too_many_pixels", 413


class UnsupportedType(GemidInputError):
    code, status = "unsupported_type", 415


class CorruptImage(GemidInputError):
    code, status = "corrupt_image", 422


class ModelError(RuntimeError):
    """The model bundle is missing, altered (sha256 mismatch) or malformed. A set-up problem, not user input."""
