"""Errors a user can act on.

Every failure caused by input (a slide, a checkpoint, annotations, options) is a
:class:`WsiIhcError`; the CLI prints its message as one line and exits non-zero.
Messages name the file, say what was expected and what was found, and the fix.
"""

from __future__ import annotations


class WsiIhcError(Exception):
    """Base of all errors the CLI reports as one line."""


class SlideError(WsiIhcError):
    """A slide or image cannot be opened or read, or lacks a pixel size."""


class NoPixelSizeError(SlideError):
    """The file records no pixel size (a plain image, a camera photo) and none was given."""


class CheckpointError(WsiIhcError):
    """A checkpoint is missing, corrupt, or built for another architecture."""


class AnnotationError(WsiIhcError):
    """Point annotations are malformed, empty, outside the image or of unknown class."""


class ConfigError(WsiIhcError):
    """Options that contradict each other or are out of range."""
