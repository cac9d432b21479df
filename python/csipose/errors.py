"""The exceptions csipose raises.

``CsiposeError`` is the base of every csipose-specific error; wrong argument
shapes, dtypes or values raise the standard ``ValueError`` / ``TypeError``.
"""

from csipose._native import CheckpointError, CsiposeError, DataFormatError

__all__ = ["CheckpointError", "CsiposeError", "DataFormatError"]
