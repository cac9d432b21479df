"""The exceptions csipose raises.

``CsiposeError`` is the base of every csipose-specific error; wrong argument
shapes, dtypes or values raise the standard ``ValueError`` / ``TypeError``.
"""

from csipose._native import CheckpointError, CsiposeError, DataFormatError


class TrainingError(CsiposeError):
    """Training cannot go on (too many non-finite losses, a resume that would change
    the arithmetic, a device that is not there)."""


__all__ = ["CheckpointError", "CsiposeError", "DataFormatError", "TrainingError"]
