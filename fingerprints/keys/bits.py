"""Keys as bits: parsing (hex, binary, int, arrays) and the binomial maths of a match.

A key is a ``(bits,)`` uint8 array of 0/1, most significant bit first. An image that
holds no key (or another key) agrees with a key on each bit with probability 1/2, so
the number of matching bits follows ``Binomial(bits, 1/2)``: :func:`match_threshold`
and :func:`chance_p_value` are its tail.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = [
    "KeyInput",
    "as_key",
    "chance_p_value",
    "key_from_hex",
    "key_from_int",
    "key_to_hex",
    "key_to_int",
    "match_threshold",
    "random_key",
]

#: what the key arguments accept: a 0/1 array or sequence, a hex (or ``0b`` binary) string, or an int
KeyInput = np.ndarray | Sequence[int] | str | int


def key_from_int(value: int, bits: int) -> np.ndarray:
    """``value`` in ``[0, 2**bits)`` as a ``(bits,)`` uint8 array of 0/1, most significant bit first."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"key must be an int, got {type(value).__name__}")
    value = int(value)
    if not 0 <= value < 2**bits:
        raise ValueError(f"key {value} does not fit in {bits} bits (expected 0 <= key < 2**{bits})")
    return np.array([(value >> (bits - 1 - i)) & 1 for i in range(bits)], dtype=np.uint8)


def key_to_int(key: np.ndarray) -> int:
    """The integer of a 0/1 key, most significant bit first."""
    out = 0
    for b in np.asarray(key).ravel():
        out = (out << 1) | int(b)
    return out


def key_from_hex(text: str, bits: int) -> np.ndarray:
    """A hex string (``"a3f0"``, optional ``0x``) of at most ``ceil(bits / 4)`` digits as a key.

    A string starting with ``0b`` is read as binary digits and must have exactly ``bits`` of them.
    """
    s = text.strip().lower().replace("_", "")
    if s.startswith("0b"):
        digits = s[2:]
        if len(digits) != bits or set(digits) - {"0", "1"}:
            raise ValueError(f"binary key {text!r} must have exactly {bits} digits 0/1, got {len(digits)}")
        return np.array([int(c) for c in digits], dtype=np.uint8)
    if s.startswith("0x"):
        s = s[2:]
    n_digits = -(-bits // 4)
    if not s or len(s) > n_digits or set(s) - set("0123456789abcdef"):
        raise ValueError(f"key {text!r} is not a hex string of at most {n_digits} digits (a {bits}-bit key)")
    return key_from_int(int(s, 16), bits)


def key_to_hex(key: np.ndarray) -> str:
    """The hex string of a 0/1 key (``ceil(bits / 4)`` digits, most significant first)."""
    bits = np.asarray(key).size
    return format(key_to_int(key), f"0{-(-bits // 4)}x")


def random_key(bits: int, seed: int | None = None) -> np.ndarray:
    """A uniformly random ``(bits,)`` uint8 0/1 key."""
    return np.random.default_rng(seed).integers(0, 2, bits).astype(np.uint8)


def as_key(key: KeyInput, bits: int) -> np.ndarray:
    """A key given as 0/1 array or sequence, hex/binary string or int, as ``(bits,)`` uint8; ValueError otherwise."""
    if isinstance(key, str):
        return key_from_hex(key, bits)
    if isinstance(key, int | np.integer) and not isinstance(key, bool):
        return key_from_int(int(key), bits)
    arr = np.asarray(key)
    if arr.ndim != 1 or arr.size != bits:
        raise ValueError(f"key must hold {bits} bits, got an array of shape {arr.shape}")
    if not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_ or np.issubdtype(arr.dtype, np.floating)):
        raise ValueError(f"key must be 0/1 values, got dtype {arr.dtype}")
    if not np.all((arr == 0) | (arr == 1)):
        raise ValueError("key must hold only 0 and 1")
    return arr.astype(np.uint8)


def match_threshold(bits: int, fpr: float) -> tuple[int, float]:
    """Smallest ``k`` with ``P(Binomial(bits, 1/2) >= k) <= fpr``, and that tail probability.

    When even ``k = bits`` (all bits right) is more likely than ``fpr`` under chance, returns
    ``(bits, 2**-bits)``: too few bits for the requested false-match rate.
    """
    if not 0 < fpr < 1:
        raise ValueError(f"fpr must be in (0, 1), got {fpr}")
    tail = 0.0
    best = (bits, 0.5**bits)
    for k in range(bits, -1, -1):
        tail += math.comb(bits, k) * 0.5**bits
        if tail <= fpr:
            best = (k, tail)
        else:
            break
    return best


def chance_p_value(matching: int, bits: int) -> float:
    """``P(Binomial(bits, 1/2) >= matching)``: how likely an unrelated image agrees on that many bits."""
    return float(sum(math.comb(bits, k) for k in range(int(matching), bits + 1)) * 0.5**bits)
