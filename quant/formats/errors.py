"""The pack's error for unreadable or inconsistent checkpoints (re-exported by ``safetensors_io``)."""

from __future__ import annotations


class CheckpointError(ValueError):
    """A checkpoint cannot be read or does not hold what it should; the message names the file and key."""
