"""Symmetric per-channel int8 quantization of feature maps (pure numpy).

For an array ``x`` and a channel axis ``axis`` (1 for ``[T, C, h, w]`` maps and for ``[L, D]``
text states), each channel ``c`` gets one float32 scale over the whole array:

    scale[c] = max |x[..., c, ...]| / 127        (0 for an all-zero channel)
    q        = clip(round(x / scale[c]), -127, 127)   as int8
    deq(q)   = q * scale[c]                        as float32

so ``|x - deq(q)| <= scale[c] / 2`` for every element of channel ``c`` (round to nearest; the
value -128 is never used, keeping the code symmetric). The bound holds up to float32 rounding of
the product ``q * scale`` (a relative error of about 6e-8).
"""

from __future__ import annotations

import numpy as np

QMAX = 127


def _channel_shape(ndim: int, axis: int) -> tuple[int, ...]:
    shape = [1] * ndim
    shape[axis] = -1
    return tuple(shape)


def int8_scales(x: np.ndarray, axis: int = 1) -> np.ndarray:
    """The float32 scale of each channel along ``axis``: ``max |x| / 127`` (0 if all zero)."""
    x = np.asarray(x)
    axis = axis % x.ndim
    other = tuple(i for i in range(x.ndim) if i != axis)
    amax = np.max(np.abs(x.astype(np.float64)), axis=other) if x.size else np.zeros(x.shape[axis])
    return (amax / QMAX).astype(np.float32)


def quantize_int8(x: np.ndarray, axis: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Quantize a finite float array to int8 with one symmetric scale per channel.

    Args:
        x: float array, any shape; must be finite (check before calling).
        axis: the channel axis.

    Returns:
        ``(q, scale)``: ``q`` int8 with the shape of ``x``; ``scale`` float32 ``[x.shape[axis]]``.
    """
    x = np.asarray(x)
    axis = axis % x.ndim
    scale = int8_scales(x, axis)
    s = scale.astype(np.float64).reshape(_channel_shape(x.ndim, axis))
    safe = np.where(s > 0, s, 1.0)
    q = np.rint(x.astype(np.float64) / safe)
    q = np.where(s > 0, q, 0.0)
    return np.clip(q, -QMAX, QMAX).astype(np.int8), scale


def dequantize_int8(q: np.ndarray, scale: np.ndarray, axis: int = 1) -> np.ndarray:
    """``q * scale`` broadcast along ``axis``, as float32 (the inverse of :func:`quantize_int8`)."""
    q = np.asarray(q)
    axis = axis % q.ndim
    s = np.asarray(scale, dtype=np.float32).reshape(_channel_shape(q.ndim, axis))
    return q.astype(np.float32) * s
