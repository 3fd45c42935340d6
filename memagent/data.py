"""Data sets that are here without a download.

- :func:`load_digits`: scikit-learn's 8 x 8 digits (1,797 images), the offline stand-in for
  MNIST, scaled to [0, 1].
- :func:`load_idx` / :func:`load_mnist`: the real MNIST loader for users' own IDX files
  (``train-images-idx3-ubyte`` etc., optionally gzipped). Nothing is fetched.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
               0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits: images ``(1797, 8, 8)`` float32 in [0, 1], labels ``(1797,)`` int64."""
    from sklearn.datasets import load_digits as _load

    d = _load()
    return (d.images / 16.0).astype(np.float32), d.target.astype(np.int64)


def load_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (the MNIST format), plain or ``.gz``.

    :raises FileNotFoundError: no such file.
    :raises ValueError: the file is not IDX (bad magic number or truncated data).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"IDX file not found: {path}")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        raw = fh.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"{path} is not an IDX file (bad magic number); expected MNIST's "
                         "idx1-ubyte / idx3-ubyte format")
    dtype, ndim = np.dtype(_IDX_DTYPES[raw[2]]), raw[3]
    shape = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=dtype, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise ValueError(f"{path} is truncated: header says {shape}, found {data.size} values")
    return data.reshape(shape)


def load_mnist(directory: str | Path, train: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """MNIST from IDX files in ``directory``: images ``(N, 28, 28)`` float32 in [0, 1], labels.

    Looks for ``{train,t10k}-{images-idx3,labels-idx1}-ubyte`` with or without ``.gz``.
    """
    directory = Path(directory)
    prefix = "train" if train else "t10k"

    def find(stem: str) -> Path:
        for name in (stem, stem + ".gz", stem.replace("-idx", ".idx")):
            if (directory / name).is_file():
                return directory / name
        raise FileNotFoundError(f"no {stem}[.gz] in {directory}: give the folder holding "
                                "MNIST's IDX files")

    images = load_idx(find(f"{prefix}-images-idx3-ubyte")).astype(np.float32) / 255.0
    labels = load_idx(find(f"{prefix}-labels-idx1-ubyte")).astype(np.int64)
    return images, labels
