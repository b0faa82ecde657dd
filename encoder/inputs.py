"""Raw inputs for server-side embedding, checked before any model runs: the right kind for
the encoder, the image shape it was trained on, no empty or oversize texts."""

from __future__ import annotations

import numpy as np

from simsearch.contract.errors import invalid
from simsearch.contract.limits import MAX_RAW_ITEMS as MAX_ITEMS
from simsearch.contract.limits import MAX_TEXT_CHARS


def check_texts(texts: list[str], kind: str, field: str = "inputs.texts") -> list[str]:
    if kind != "text":
        raise invalid(field, f"this encoder embeds {kind}s, not texts; send inputs.images")
    if not 1 <= len(texts) <= MAX_ITEMS:
        raise invalid(field, f"must hold 1..{MAX_ITEMS} texts, got {len(texts)}")
    for i, t in enumerate(texts):
        if not t.strip():
            raise invalid(f"{field}[{i}]", "must not be empty or only whitespace")
        if len(t) > MAX_TEXT_CHARS:
            raise invalid(f"{field}[{i}]", f"must be at most {MAX_TEXT_CHARS} characters, got {len(t)}")
    return texts


def check_images(count: int, shape: tuple[int, int, int], pixels: bytes, kind: str,
                 input_shape: tuple[int, ...], field: str = "inputs.images") -> np.ndarray:
    """uint8 pixels (count, C, H, W) row-major -> an array of that shape (zero-copy)."""
    if kind != "image":
        raise invalid(field, f"this encoder embeds {kind}s, not images; send inputs.texts")
    if not 1 <= count <= MAX_ITEMS:
        raise invalid(f"{field}.count", f"must be in [1, {MAX_ITEMS}], got {count}")
    if tuple(shape) != tuple(input_shape):
        want = "x".join(map(str, input_shape))
        raise invalid(f"{field}.shape", f"channels x height x width must be {want} for this encoder, "
                                        f"got {'x'.join(map(str, shape))}")
    expected = count * int(np.prod(input_shape))
    if len(pixels) != expected:
        raise invalid(f"{field}.pixels", f"must hold count*C*H*W = {expected} uint8 bytes, got {len(pixels)}")
    return np.frombuffer(pixels, np.uint8).reshape(count, *input_shape)
