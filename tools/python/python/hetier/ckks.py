"""The RNS-CKKS scheme on numpy arrays: parameters, keys, encrypt, add, multiply, rotate,
rescale, decrypt (see ``ckks.pyi`` for the signatures)."""

from ._hetier import ckks as _ckks

Context = _ckks.Context
Ciphertext = _ckks.Ciphertext
Keys = _ckks.Keys

__all__ = ["Context", "Ciphertext", "Keys"]
