"""Tensor codecs: k-means non-uniform quantization with an exact zero, bit packing, XOR residuals."""

from __future__ import annotations

import numpy as np


def kmeans_1d(values: np.ndarray, levels: int, iterations: int = 15) -> tuple[np.ndarray, np.ndarray]:
    """(codebook sorted ascending, index per value) of a 1-D k-means with `levels` centroids.

    Initialised at quantiles, then Lloyd steps; on sorted 1-D data the nearest centroid is found
    with the midpoints between centroids, so each step is O(n log k).
    """
    if values.size == 0:
        return np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.int64)
    values = values.astype(np.float64)
    unique = np.unique(values)
    if unique.size <= levels:
        codebook = unique
    else:
        codebook = np.quantile(values, (np.arange(levels) + 0.5) / levels)
        for _ in range(iterations):
            index = np.searchsorted((codebook[:-1] + codebook[1:]) / 2, values)
            sums = np.bincount(index, weights=values, minlength=levels)
            counts = np.bincount(index, minlength=levels)
            updated = np.where(counts > 0, sums / np.maximum(counts, 1), codebook)
            if np.allclose(updated, codebook):
                break
            codebook = np.sort(updated)
    index = np.searchsorted((codebook[:-1] + codebook[1:]) / 2, values) if codebook.size > 1 else np.zeros(values.size, dtype=np.int64)
    return codebook.astype(np.float32), index.astype(np.int64)


def pack_bits(indices: np.ndarray, bits: int) -> bytes:
    """Pack integers in [0, 2**bits) into a byte string, `bits` bits each (big-endian bit order)."""
    if indices.size == 0:
        return b""
    planes = ((indices[:, None] >> np.arange(bits - 1, -1, -1)) & 1).astype(np.uint8)
    return np.packbits(planes.reshape(-1)).tobytes()


def unpack_bits(data: bytes, count: int, bits: int) -> np.ndarray:
    if count == 0:
        return np.zeros(0, dtype=np.int64)
    flat = np.unpackbits(np.frombuffer(data, dtype=np.uint8))[: count * bits]
    if flat.size != count * bits:
        raise ValueError("packed index data is shorter than its declared length")
    planes = flat.reshape(count, bits).astype(np.int64)
    return (planes << np.arange(bits - 1, -1, -1)).sum(axis=1)


def pack_mask(mask: np.ndarray) -> bytes:
    return np.packbits(mask.reshape(-1).astype(np.uint8)).tobytes()


def unpack_mask(data: bytes, count: int) -> np.ndarray:
    bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8))[:count]
    if bits.size != count:
        raise ValueError("mask data is shorter than its declared length")
    return bits.astype(bool)


def xor_residual(current: np.ndarray, previous: np.ndarray | None) -> np.ndarray:
    """Bitwise XOR of the raw words: exactly invertible (unlike float subtraction), and mostly zero bits."""
    words = current.view(_word_type(current))
    return words if previous is None else words ^ previous.view(_word_type(previous))


def _word_type(array: np.ndarray) -> np.dtype:
    return np.dtype(f"u{array.dtype.itemsize}")
