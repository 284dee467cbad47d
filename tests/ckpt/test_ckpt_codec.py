import numpy as np
import pytest

from slimvision.ckpt.codec import kmeans_1d, pack_bits, pack_mask, unpack_bits, unpack_mask, xor_residual


def test_kmeans_finds_obvious_clusters():
    values = np.array([0.0, 0.1, -0.1, 5.0, 5.1, 4.9, 10.0, 10.2, 9.8])
    codebook, index = kmeans_1d(values, 3)
    assert np.allclose(codebook, [0.0, 5.0, 10.0], atol=1e-6)
    assert index.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]


def test_kmeans_with_fewer_unique_values_than_levels_is_exact():
    values = np.array([1.0, 2.0, 1.0])
    codebook, index = kmeans_1d(values, 15)
    assert np.array_equal(codebook[index], values.astype(np.float32))


@pytest.mark.parametrize("bits", [1, 3, 4, 8])
def test_bit_packing_roundtrip(bits):
    rng = np.random.default_rng(bits)
    indices = rng.integers(0, 2**bits, 1001)
    packed = pack_bits(indices, bits)
    assert len(packed) == (1001 * bits + 7) // 8
    assert np.array_equal(unpack_bits(packed, 1001, bits), indices)


def test_mask_roundtrip_and_truncation():
    mask = np.random.default_rng(0).random(77) > 0.5
    assert np.array_equal(unpack_mask(pack_mask(mask), 77), mask)
    with pytest.raises(ValueError):
        unpack_mask(pack_mask(mask)[:3], 77)


def test_xor_residual_is_exactly_invertible():
    a = np.random.default_rng(0).standard_normal(100).astype(np.float32)
    b = a + np.float32(1e-3)
    residual = xor_residual(b, a)
    assert np.array_equal((residual ^ a.view(np.uint32)).view(np.float32), b)
