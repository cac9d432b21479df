# Type stubs of the compiled extension csipose._native (rust/py/src).
# Checked against the built module by `python -m mypy.stubtest csipose._native` (make lint).
import os
from collections.abc import Sequence
from typing import Any, TypeVar, final

import numpy as np
import numpy.typing as npt

_T = TypeVar("_T")

__all__ = [
    "CheckpointError",
    "CountNet",
    "CsiposeError",
    "DataFormatError",
    "MappedStore",
    "PoseNet",
    "SparseAttentionStream",
    "TemporalHead",
    "TemporalHeadStream",
    "WindowGather",
    "__version__",
    "aligned_errors",
    "apply_subcarrier_map",
    "assign",
    "assign_batch",
    "assign_general",
    "assign_list",
    "assign_padded",
    "countnet_tensors",
    "get_num_threads",
    "greedy_match",
    "impair_channel",
    "impairment_draws",
    "joint_errors",
    "multipath_response",
    "oks",
    "oks_matrices",
    "pair_distances",
    "permutation",
    "person_matches",
    "sanitize_mmfi",
    "set_num_threads",
    "shadowing",
    "simd_level",
    "sparse_attention_backward",
    "sparse_attention_forward",
    "stack_people",
    "synthesize_channel",
]

__version__: str

class CsiposeError(Exception): ...
class DataFormatError(CsiposeError): ...
class CheckpointError(CsiposeError): ...

def set_num_threads(n: int) -> None: ...
def get_num_threads() -> int: ...
def simd_level() -> str: ...
def joint_errors(
    pred: npt.NDArray[np.float32],
    gt: npt.NDArray[np.float32],
    visible: npt.NDArray[np.bool_] | None = None,
    *,
    norm: str | None = None,
    torso: tuple[int, int] | None = None,
    floor: float = 0.01,
    factors: npt.NDArray[np.float64] | None = None,
    thresholds: npt.NDArray[np.float64] | None = None,
    root: int | None = None,
    per_sample: bool = False,
    distances: bool = True,
) -> dict[str, Any]: ...
def aligned_errors(
    pred: npt.NDArray[np.float32],
    gt: npt.NDArray[np.float32],
    visible: npt.NDArray[np.bool_] | None = None,
    *,
    alignment: str,
    per_sample: bool = False,
) -> dict[str, Any]: ...
def oks(
    pred: npt.NDArray[np.float32],
    gt: npt.NDArray[np.float32],
    visible: npt.NDArray[np.bool_] | None = None,
    *,
    sigmas: npt.NDArray[np.float64],
    area: npt.NDArray[np.float64] | None = None,
    bbox: npt.NDArray[np.float64] | None = None,
) -> npt.NDArray[np.float64]: ...
def sanitize_mmfi(
    frames: npt.NDArray[np.float32],
) -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.uint8]]: ...
def apply_subcarrier_map(
    x: npt.NDArray[np.float32],
    start: npt.NDArray[np.uint32],
    index: npt.NDArray[np.uint32],
    weight: npt.NDArray[np.float64],
    out: npt.NDArray[np.float32],
) -> None: ...
def assign(
    cost: npt.NDArray[np.float64], partial: bool = False
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]: ...
def assign_general(
    cost: npt.NDArray[np.float64], partial: bool = False
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]: ...
def pair_distances(
    pred: npt.NDArray[np.float32],
    gt: npt.NDArray[np.float32],
    visible: npt.NDArray[np.bool_],
    pred_offsets: npt.NDArray[np.uint64],
    gt_offsets: npt.NDArray[np.uint64],
) -> npt.NDArray[np.float64]: ...
def assign_batch(
    costs: npt.NDArray[np.float64],
    shapes: npt.NDArray[np.uint64],
    partial: bool = False,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]: ...
def assign_list(
    costs: object, partial: bool = False
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]] | None: ...
def stack_people(
    frames: list[object],
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]] | None: ...
def person_matches(flat: object, cls: type[_T]) -> list[_T] | None: ...
def assign_padded(
    costs: npt.NDArray[np.float64],
    sizes: npt.NDArray[np.int64] | None = None,
    partial: bool = False,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]: ...
def oks_matrices(
    dt: npt.NDArray[np.float64],
    gt: npt.NDArray[np.float64],
    labelled: npt.NDArray[np.bool_],
    area: npt.NDArray[np.float64],
    sigmas: npt.NDArray[np.float64],
    dt_offsets: npt.NDArray[np.uint64],
    gt_offsets: npt.NDArray[np.uint64],
    bbox: npt.NDArray[np.float64] | None = None,
) -> npt.NDArray[np.float64]: ...
def greedy_match(
    oks: npt.NDArray[np.float64],
    dt_offsets: npt.NDArray[np.uint64],
    gt_offsets: npt.NDArray[np.uint64],
    gt_ignore: npt.NDArray[np.bool_],
    crowd: npt.NDArray[np.bool_],
    thresholds: npt.NDArray[np.float64],
) -> npt.NDArray[np.uint8]: ...
def permutation(n: int, seed: int) -> npt.NDArray[np.uint64]: ...

@final
class MappedStore:
    def __new__(cls, files: list[tuple[str, str | os.PathLike[str]]]) -> MappedStore: ...
    def names(self) -> list[str]: ...
    def shape(self, name: str) -> list[int]: ...
    def dtype(self, name: str) -> str: ...
    def gather_windows(
        self,
        name: str,
        starts: npt.NDArray[np.int64],
        length: int,
        out: npt.NDArray[np.float32],
        *,
        minmax: bool = False,
        map: tuple[npt.NDArray[np.uint32], npt.NDArray[np.uint32], npt.NDArray[np.float64]]
        | None = None,
        zscore: tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]] | None = None,
    ) -> None: ...
    def gather_rows(
        self, name: str, rows: npt.NDArray[np.int64], out: npt.NDArray[np.uint8]
    ) -> None: ...
    def moments(
        self,
        name: str,
        frames: npt.NDArray[np.int64],
        *,
        minmax: bool = False,
        map: tuple[npt.NDArray[np.uint32], npt.NDArray[np.uint32], npt.NDArray[np.float64]]
        | None = None,
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], int]: ...

@final
class WindowGather:
    def __new__(
        cls,
        store: MappedStore,
        starts: npt.NDArray[np.int64],
        length: int,
        label_offsets: npt.NDArray[np.int64],
        label_all: bool,
        fields: list[str],
        transforms: list[
            tuple[
                str,
                bool,
                tuple[npt.NDArray[np.uint32], npt.NDArray[np.uint32], npt.NDArray[np.float64]]
                | None,
                tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]] | None,
            ]
        ],
    ) -> WindowGather: ...
    def __len__(self) -> int: ...
    def gather(
        self,
        indices: npt.NDArray[np.int64],
        names: Sequence[str],
        outs: Sequence[npt.NDArray[Any] | None],
    ) -> None: ...

def multipath_response(
    tau: npt.NDArray[np.float64],
    gain_re: npt.NDArray[np.float64],
    gain_im: npt.NDArray[np.float64],
    fc: float,
    df: float,
    index: npt.NDArray[np.int32],
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]: ...
def shadowing(
    pieces: npt.NDArray[np.float64],
    offset: npt.NDArray[np.float64],
    length: npt.NDArray[np.float64],
    points: npt.NDArray[np.float64],
    point_segment: npt.NDArray[np.uint32],
    radius: npt.NDArray[np.float64],
    block: npt.NDArray[np.float64],
    wavelength: float,
    floor: float,
    pointwise: bool = False,
    point_index: npt.NDArray[np.uint32] | None = None,
) -> npt.NDArray[np.float64]: ...
def synthesize_channel(
    static_tau: npt.NDArray[np.float64],
    static_re: npt.NDArray[np.float64],
    static_im: npt.NDArray[np.float64],
    shadow: npt.NDArray[np.float64],
    body_tau: npt.NDArray[np.float64],
    body_re: npt.NDArray[np.float64],
    body_im: npt.NDArray[np.float64],
    fixed_re: npt.NDArray[np.float32],
    fixed_im: npt.NDArray[np.float32],
    packets: int,
    fc: float,
    df: float,
    index: npt.NDArray[np.int32],
) -> npt.NDArray[np.float32]: ...
def impair_channel(
    h: npt.NDArray[np.float32],
    nic_of_link: npt.NDArray[np.uint32],
    nics: int,
    subcarriers: npt.NDArray[np.float64],
    null: npt.NDArray[np.bool_],
    n_fft: float,
    snr_db: float,
    seed: int,
) -> None: ...
def impairment_draws(
    seed: int, packets: int, nics: int, values: int
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]: ...

@final
class CountNet:
    @staticmethod
    def load(path: str | os.PathLike[str]) -> CountNet: ...
    def predict(
        self, windows: npt.NDArray[np.float32]
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64], npt.NDArray[np.float32]]: ...
    @property
    def path(self) -> os.PathLike[str]: ...
    @property
    def parameters(self) -> int: ...
    @property
    def temperature(self) -> float: ...
    @property
    def confidence_temperature(self) -> float: ...
    @property
    def extra_tensors(self) -> list[str]: ...

def countnet_tensors() -> tuple[list[tuple[str, list[int]]], list[tuple[str, list[int]]]]: ...
def sparse_attention_forward(
    q: npt.NDArray[Any],
    k: npt.NDArray[Any],
    v: npt.NDArray[Any],
    *,
    window: int,
    block: int,
    landmarks: bool,
    globals: list[int],
    log_stride: bool,
    causal: bool,
    scale: float,
    horizon: int | None = None,
) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]: ...
def sparse_attention_backward(
    q: npt.NDArray[Any],
    k: npt.NDArray[Any],
    v: npt.NDArray[Any],
    out: npt.NDArray[Any],
    lse: npt.NDArray[Any],
    dout: npt.NDArray[Any],
    *,
    window: int,
    block: int,
    landmarks: bool,
    globals: list[int],
    log_stride: bool,
    causal: bool,
    scale: float,
    horizon: int | None = None,
) -> tuple[npt.NDArray[Any], npt.NDArray[Any], npt.NDArray[Any]]: ...

@final
class SparseAttentionStream:
    def __new__(
        cls,
        batch: int,
        q_heads: int,
        kv_heads: int,
        head_dim: int,
        *,
        window: int,
        block: int,
        landmarks: bool,
        globals: list[int],
        log_stride: bool,
        causal: bool,
        scale: float,
        horizon: int | None = None,
    ) -> SparseAttentionStream: ...
    def step(
        self,
        q: npt.NDArray[np.float32],
        k: npt.NDArray[np.float32],
        v: npt.NDArray[np.float32],
    ) -> npt.NDArray[np.float32]: ...
    @property
    def t(self) -> int: ...
    def cache_rows(self) -> tuple[int, int, int]: ...

@final
class PoseNet:
    @staticmethod
    def load(
        path: str | os.PathLike[str],
        *,
        kind: str,
        window: int,
        keypoints: int,
        dims: int,
        output_activation: bool,
        min_feature_width: int,
        frames: int,
        phase: bool,
        mean_pose: npt.NDArray[np.float32],
        target_scale: float,
        minmax: bool = False,
        map: tuple[npt.NDArray[np.uint32], npt.NDArray[np.uint32], npt.NDArray[np.float64], int]
        | None = None,
        zscore: tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]] | None = None,
        prefix: str | None = None,
    ) -> PoseNet: ...
    def predict(
        self, amplitude: npt.NDArray[np.float32], phase: npt.NDArray[np.float32] | None = None
    ) -> npt.NDArray[np.float32]: ...
    def forward(self, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]: ...
    @property
    def path(self) -> os.PathLike[str]: ...
    @property
    def parameters(self) -> int: ...
    @property
    def input_shape(self) -> tuple[int, int]: ...
    @property
    def output_shape(self) -> tuple[int, int]: ...

@final
class TemporalHead:
    @staticmethod
    def load(
        path: str | os.PathLike[str],
        *,
        keypoints: int,
        dims: int,
        dim: int,
        q_heads: int,
        kv_heads: int,
        head_dim: int,
        window: int,
        block: int,
        landmarks: bool,
        globals: list[int],
        log_stride: bool,
        causal: bool,
        horizon: int | None = None,
    ) -> TemporalHead: ...
    def forward(self, f: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]: ...
    def stream(self, batch: int) -> TemporalHeadStream: ...
    @property
    def parameters(self) -> int: ...
    @property
    def path(self) -> os.PathLike[str]: ...

@final
class TemporalHeadStream:
    def step(self, f: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]: ...
    @property
    def t(self) -> int: ...
    def cache_rows(self) -> tuple[int, int, int]: ...
