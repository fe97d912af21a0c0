"""hetier: encrypted (RNS-CKKS) inference whose keys and ciphertexts live in a tiered
DRAM / persistent-memory store.

Typical use::

    import numpy as np, hetier
    model  = hetier.load("model.onnx")                 # or a hetier-model .json
    client = hetier.Client(model)                      # holds the secret key
    server = hetier.Server(model, pool="/var/tmp/pool", dram_budget="1GiB", policy="planned")
    server.load_keys(client.evaluation_keys())         # bytes; durable in the pool
    y = client.decrypt(server.infer(client.encrypt(x)))
    print(server.last_report())
"""

from . import errors
from . import ckks
from ._hetier import SUPPORTED_ONNX_OPS, Client, Model, Server, load
from .errors import (
    ConfigError,
    CorruptDataError,
    CryptoError,
    Error,
    FileError,
    InputShapeError,
    KeyDamagedError,
    KeySetError,
    ModelError,
    StoreError,
    UnsupportedOperatorError,
)

__all__ = [
    "load",
    "Model",
    "Client",
    "Server",
    "ckks",
    "errors",
    "SUPPORTED_ONNX_OPS",
    "Error",
    "ModelError",
    "UnsupportedOperatorError",
    "InputShapeError",
    "KeySetError",
    "KeyDamagedError",
    "CorruptDataError",
    "CryptoError",
    "ConfigError",
    "FileError",
    "StoreError",
]
