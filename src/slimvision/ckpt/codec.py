"""Tensor codecs: k-means non-uniform quantization with an exact zero, bit packing, XOR residuals."""

from __future__ import annotations

import numpy as np


KMEANS_TOLERANCE = 1e-9  # stop when an iteration lowers the squared error by less than this fraction
KMEANS_MAX_ITERATIONS = 10_000


def kmeans_1d(values: np.ndarray, levels: int, tolerance: float = KMEANS_TOLERANCE) -> tuple[np.ndarray, np.ndarray]:
    """(codebook sorted ascending, index per value) of a 1-D k-means with `levels` centroids, run to convergence.

    Initialised at quantiles, then Lloyd steps until the squared error stops falling (relative change
    below `tolerance`) or the assignment no longer changes. On sorted 1-D data every cluster is a
    contiguous run, so one step is a search of the k-1 midpoints plus prefix sums: O(k log n).
    """
    if values.size == 0:
        return np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.int64)
    values = values.astype(np.float64)
    unique = np.unique(values)
    if unique.size <= levels:
        codebook = unique
    else:
        ordered = np.sort(values)
        prefix = np.concatenate(([0.0], np.cumsum(ordered)))
        prefix_sq = np.concatenate(([0.0], np.cumsum(ordered**2)))
        codebook = np.quantile(ordered, (np.arange(levels) + 0.5) / levels)
        previous_error, previous_bounds = np.inf, None
        for _ in range(KMEANS_MAX_ITERATIONS):
            bounds = np.concatenate(([0], np.searchsorted(ordered, (codebook[:-1] + codebook[1:]) / 2), [ordered.size]))
            counts = np.diff(bounds)
            sums = prefix[bounds[1:]] - prefix[bounds[:-1]]
            codebook = np.where(counts > 0, sums / np.maximum(counts, 1), codebook)
            squares = prefix_sq[bounds[1:]] - prefix_sq[bounds[:-1]]
            error = float(np.sum(squares - 2 * codebook * sums + counts * codebook**2))
            converged = previous_bounds is not None and np.array_equal(bounds, previous_bounds)
            if converged or (np.isfinite(previous_error) and previous_error - error <= tolerance * previous_error):
                break
            previous_error, previous_bounds = error, bounds
            codebook = np.sort(codebook)
    index = np.searchsorted((codebook[:-1] + codebook[1:]) / 2, values) if codebook.size > 1 else np.zeros(values.size, dtype=np.int64)
    return codebook.astype(np.float32), index.astype(np.int64)


def quantization_error(values: np.ndarray, codebook: np.ndarray, index: np.ndarray) -> float:
    """Relative error ||values - codebook[index]|| / ||values|| (0 for an all-zero input)."""
    norm = float(np.linalg.norm(values))
    return float(np.linalg.norm(values - codebook[index])) / norm if norm else 0.0


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
