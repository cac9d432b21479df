"""csipose: WiFi channel state information (CSI) to human pose and person counts.

Python is the surface; the hot paths are Rust (``csipose._native``, never
imported directly). Every number csipose reports carries its definition.
"""

from csipose import matching, metrics, skeleton
from csipose._native import __version__
from csipose.errors import CheckpointError, CsiposeError, DataFormatError
from csipose.runtime import get_num_threads, set_num_threads, simd_level
from csipose.runtime.countnet import CountNet, CountPrediction
from csipose.runtime.posenet import PoseNet

__all__ = [
    "CheckpointError",
    "CountNet",
    "CountPrediction",
    "CsiposeError",
    "DataFormatError",
    "PoseNet",
    "__version__",
    "get_num_threads",
    "matching",
    "metrics",
    "set_num_threads",
    "simd_level",
    "skeleton",
]
