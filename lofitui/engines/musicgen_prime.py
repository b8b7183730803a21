"""MusicGen codes as request text: how a track is primed with the end of the previous one.

A primed track continues given EnCodec codes the way a long track's next window continues the
last one. The codes travel inside the request (the ``prime_codes`` parameter) so a request
still determines its audio by itself and the cache key tells a primed track from an unprimed
one. Text form: base64 of the (K, F) codes as little-endian uint16, codebook-major (about
6.4 KB of text for the 12 s a window continuation uses).
"""

from __future__ import annotations

import base64
import binascii

import numpy as np

from lofitui.errors import UsageError

PRIME_PARAM = "prime_codes"


def codes_to_text(codes: np.ndarray) -> str:
    """(K, F) integer codes -> the ``prime_codes`` text."""
    codes = np.asarray(codes)
    if codes.ndim != 2 or (codes.size and (codes.min() < 0 or codes.max() > 0xFFFF)):
        raise ValueError(f"codes must be (K, F) in 0..65535, got shape {codes.shape}")
    return base64.b64encode(codes.astype("<u2").tobytes()).decode("ascii")


def codes_from_text(text: str, num_codebooks: int, vocab: int) -> np.ndarray:
    """The ``prime_codes`` text -> (K, F) int64 codes, checked against the model."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise UsageError(f"{PRIME_PARAM} is not base64 text") from None
    if len(raw) % (2 * num_codebooks):
        raise UsageError(f"{PRIME_PARAM} does not hold whole frames of {num_codebooks} codebooks")
    flat = np.frombuffer(raw, dtype="<u2")
    codes = flat.astype(np.int64).reshape(num_codebooks, -1)
    if codes.size and codes.max() >= vocab:
        raise UsageError(f"{PRIME_PARAM} holds codes >= {vocab}: not this model's codes")
    return codes
