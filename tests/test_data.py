"""The offline data loaders: digits, and the IDX loader on a small file the test writes."""

import gzip
import struct

import numpy as np
import pytest

from memagent.data import load_digits, load_idx, load_mnist


def _write_idx(path, array, opener=open):
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with opener(path, "wb") as fh:
        fh.write(header + array.astype(np.uint8).tobytes())


def test_digits_in_unit_range():
    x, y = load_digits()
    assert x.shape == (1797, 8, 8) and y.shape == (1797,)
    assert x.min() == 0.0 and x.max() == 1.0 and set(np.unique(y)) == set(range(10))


def test_idx_roundtrip_plain_and_gzip(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5, 28, 28), dtype=np.uint8)
    labels = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    _write_idx(tmp_path / "train-images-idx3-ubyte.gz", images, gzip.open)
    _write_idx(tmp_path / "train-labels-idx1-ubyte", labels)
    np.testing.assert_array_equal(load_idx(tmp_path / "train-labels-idx1-ubyte"), labels)
    x, y = load_mnist(tmp_path)
    np.testing.assert_allclose(x, images / 255.0, atol=1e-7)
    np.testing.assert_array_equal(y, labels)


def test_idx_bad_input(tmp_path):
    (tmp_path / "junk").write_bytes(b"\x12\x34\x56\x78rest")
    with pytest.raises(ValueError, match="not an IDX file"):
        load_idx(tmp_path / "junk")
    with pytest.raises(FileNotFoundError, match="IDX file not found"):
        load_idx(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="MNIST's IDX files"):
        load_mnist(tmp_path)
