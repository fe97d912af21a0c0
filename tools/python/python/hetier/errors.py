"""Exceptions raised by hetier. Each carries the Rust library's message.

Every class derives from :class:`Error` and from the built-in exception a caller would
catch for that kind of failure (``ValueError`` for bad input, ``OSError`` for files and the
pool).
"""


class Error(Exception):
    """Base class of every hetier error."""


class ModelError(Error, ValueError):
    """A model file is malformed, inconsistent, or too deep for the parameters."""


class UnsupportedOperatorError(ModelError):
    """An ONNX graph uses operators hetier does not lower; the message lists every node."""


class InputShapeError(Error, ValueError):
    """An input sample does not have the model's input shape."""


class KeySetError(Error, ValueError):
    """Evaluation keys are missing, made for other parameters or by an older hetier whose
    seed format this build no longer reads, or not loaded yet."""


class CorruptDataError(Error, ValueError):
    """Bytes (a ciphertext, a key bundle, a key file) failed validation."""


class CryptoError(Error, ValueError):
    """A CKKS operation was given operands it cannot combine (levels, scales, parameters)."""


class ConfigError(Error, ValueError):
    """A setting (budget, policy, parameters) is invalid."""


class FileError(Error, OSError):
    """A file could not be read or written."""


class StoreError(Error, OSError):
    """The tiered store failed: the pool is locked by another server, corrupt, or the DRAM
    budget cannot hold what must be pinned."""


class KeyDamagedError(StoreError):
    """An evaluation key is damaged in the server's pool. The server holds no secret key to
    make it again: send the client's keys once more with ``server.restore_keys`` and resubmit."""
