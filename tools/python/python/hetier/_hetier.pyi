"""Type stubs of the native extension (re-exported by ``hetier``)."""

from os import PathLike
from typing import Any, Optional, Sequence, Union

import numpy as np
import numpy.typing as npt

from . import ckks as ckks

SUPPORTED_ONNX_OPS: list[str]

_Path = Union[str, PathLike[str]]

def load(
    path: _Path,
    *,
    act_range: Optional[tuple[float, float]] = None,
    act_degree: int = 15,
    calibration: Optional[npt.ArrayLike] = None,
    insecure_test_params: bool = False,
    name: Optional[str] = None,
) -> Model:
    """Load an ONNX file (``.onnx``) or a hetier-model JSON description.

    ONNX graphs are lowered to hetier layers; Relu/Sigmoid/Tanh/SiLU become Chebyshev
    polynomials of degree ``act_degree`` on ``act_range`` or on ranges calibrated from
    ``calibration`` (samples ``[N, *input_shape]``). The smallest 128-bit parameter set with
    enough levels and slots is chosen, or fast insecure ones with ``insecure_test_params``.
    Raises UnsupportedOperatorError listing every node it cannot lower.
    """

class Model:
    """A model ready to run encrypted: layers, parameters and compiled program."""

    @property
    def name(self) -> str: ...
    @property
    def depth(self) -> int:
        """Multiplicative depth (levels consumed on the deepest path)."""
    @property
    def input_shape(self) -> list[int]:
        """Shape of one sample, without a batch axis."""
    @property
    def output_size(self) -> int: ...
    def params(self) -> dict[str, Any]:
        """log_n, levels, slots, log_scale, log_qp, secure, insecure_test_params, id."""
    def layers(self) -> list[dict[str, Any]]:
        """The lowered layers: name, kind, inputs, in_shape, out_shape, depth (and function,
        range for approximated activations)."""
    def reference(self, x: npt.ArrayLike) -> np.ndarray:
        """Plaintext float64 output of the lowered model for one sample."""
    def save(self, dir: _Path) -> str:
        """Write <dir>/<name>.json and its safetensors weights; return the JSON path."""
    def to_json(self) -> str: ...
    def plan(
        self,
        budgets: Sequence[float] = ...,
        policies: Sequence[str] = ...,
        pm_dir: Optional[_Path] = None,
        cost_model: Optional[_Path] = None,
    ) -> dict[str, Any]:
        """Predicted seconds per policy and DRAM budget (fractions of the peak live set)."""

class Client:
    """Holds the secret key (random from the OS, zeroized on drop); encrypts and decrypts."""

    def __init__(self, model: Model) -> None: ...
    @staticmethod
    def load(model: Model, path: _Path) -> Client:
        """A client whose secret key is read from a file written by ``save``."""
    def save(self, path: _Path) -> None:
        """Write the secret key to ``path`` with mode 0600."""
    @property
    def key_set_id(self) -> int: ...
    def evaluation_keys(self) -> bytes:
        """The relinearisation and rotation keys the model needs, for ``Server.load_keys``."""
    def encrypt(self, x: npt.ArrayLike) -> bytes:
        """Encrypt one sample of the model's input shape."""
    def decrypt(self, ct: bytes) -> np.ndarray:
        """Decrypt a result of ``Server.infer`` into the model's outputs."""

class Server:
    """Runs a model over a tiered DRAM/PM store; holds no secret."""

    def __init__(
        self,
        model: Model,
        pool: _Path,
        dram_budget: Union[int, str, None] = None,
        policy: str = "planned",
        mmap: bool = False,
    ) -> None: ...
    def load_keys(self, keys: bytes) -> dict[str, int]:
        """Put a client's evaluation keys in the pool (durable); returns counts."""
    def use_keys(self, key_set_id: int) -> int:
        """Use a key set an earlier process put in the pool; returns the keys found."""
    def restore_keys(self, keys: bytes) -> int:
        """Replace keys damaged in the pool from a client's keys; returns how many."""
    def infer(self, ct: bytes) -> bytes:
        """Run the model on an encrypted sample (GIL released; threads run at once)."""
    def stats(self) -> dict[str, int]:
        """Served, failed, healed, keys damaged/restored, admission counters."""
    def last_report(self) -> Optional[dict[str, Any]]:
        """Seconds, per-layer compute, bytes moved, store peak DRAM, budget, peak RSS."""
