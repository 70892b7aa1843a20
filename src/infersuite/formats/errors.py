"""The error raised for a model file that cannot be read safely."""

from __future__ import annotations

from infersuite.models.loader import ModelLoadError


class FormatError(ModelLoadError):
    """A model file is corrupt, inconsistent or missing; the message names the file,
    what is wrong and what to do."""
