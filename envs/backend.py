"""Array backends of the batched engine: numpy on the host, torch on any device.

The engine's rules (:mod:`memagent.envs.core` and the worlds) are written once, against the
few operations numpy and torch spell differently, collected here as a namespace ``xp``
(``engine.xp``): dtype casts, lookups through small tables with ``uint8`` indices, masked
copies, non-zero indices, host <-> device moves. Everything else (slicing, fancy indexing,
arithmetic, comparisons, ``uint8`` wrap-around) is spelled alike in both libraries.

An engine is built on the host with numpy; :meth:`GridEngine.to` moves its arrays to a torch
device (``make_engine(..., device="cuda")``), views of its map staying views.

Random numbers: every draw of a torch engine comes from the engine's ``numpy.random.Generator``
on the host, the same calls in the same order as the numpy engine, and the drawn values are
moved to the device. So both backends give identical trajectories for a seed (tested on the
CPU for every world); the cost is one small host -> device copy per batch of resets (and
per pixel frame in Screens, whose noise is drawn per screen).

This module imports torch only when a torch backend is asked for.
"""

from __future__ import annotations

import numpy as np


class NumpyBackend:
    """The host backend: numpy arrays (the default)."""

    name = "numpy"
    device = None
    is_numpy = True
    uint8, int32, int64, float32, float64, bool = (np.uint8, np.int32, np.int64, np.float32,
                                                   np.float64, np.bool_)

    def asarray(self, x, dtype=None):
        """``x`` (a numpy array, list or scalar) as an array of this backend."""
        return np.asarray(x, dtype=dtype)

    def to_numpy(self, x) -> np.ndarray:
        return np.asarray(x)

    def astype(self, x, dtype):
        return x.astype(dtype)

    def take(self, table, idx):
        """``table[idx]`` for a 1-D ``table`` and any integer ``idx`` array (``uint8`` tiles
        and headings included), of ``idx``'s shape."""
        return table[idx]

    def put(self, arr, idx, value) -> None:
        """``arr[idx] = value`` for a 1-D ``arr`` and a scalar ``value``."""
        arr[idx] = value

    def copyto(self, dst, src, where) -> None:
        np.copyto(dst, src, where=where)

    def minimum(self, x, value):
        return np.minimum(x, value)

    def add(self, a, b, out) -> None:
        np.add(a, b, out=out)

    def nonzero(self, mask):
        """Indices where the 1-D ``mask`` is True (an ``int64`` array)."""
        return np.flatnonzero(mask)

    def arange(self, n: int):
        return np.arange(n, dtype=np.int64)


class TorchBackend:
    """Torch tensors on ``device``."""

    name = "torch"
    is_numpy = False

    def __init__(self, device):
        import torch

        self.th = torch
        self.device = torch.device(device)
        self.uint8, self.int32, self.int64 = torch.uint8, torch.int32, torch.int64
        self.float32, self.float64, self.bool = torch.float32, torch.float64, torch.bool
        self._dtypes = {np.dtype(np.uint8): torch.uint8, np.dtype(np.int32): torch.int32,
                        np.dtype(np.int64): torch.int64, np.dtype(np.float32): torch.float32,
                        np.dtype(np.float64): torch.float64, np.dtype(np.bool_): torch.bool}

    def dtype(self, dtype):
        """A torch dtype for a numpy or torch ``dtype`` (None stays None)."""
        if dtype is None or isinstance(dtype, self.th.dtype):
            return dtype
        return self._dtypes[np.dtype(dtype)]

    def asarray(self, x, dtype=None):
        if isinstance(x, np.ndarray) and not x.flags.writeable:
            x = x.copy()   # torch warns on read-only numpy memory
        return self.th.as_tensor(x, dtype=self.dtype(dtype), device=self.device)

    def to_numpy(self, x) -> np.ndarray:
        return x.cpu().numpy() if isinstance(x, self.th.Tensor) else np.asarray(x)

    def astype(self, x, dtype):
        return x.to(self.dtype(dtype))

    def take(self, table, idx):
        # index_select of the flat index: several times faster than advanced indexing on the
        # CPU; and a uint8 index would be read as a boolean mask
        if idx.dtype not in (self.th.int64, self.th.int32):
            idx = idx.long()
        return table.index_select(0, idx.reshape(-1)).view(idx.shape)

    def put(self, arr, idx, value) -> None:
        arr.index_fill_(0, idx, value)

    def copyto(self, dst, src, where) -> None:
        self.th.where(where, src, dst, out=dst)     # elementwise: writing dst in place is safe

    def minimum(self, x, value):
        return x.clamp(max=value)

    def add(self, a, b, out) -> None:
        self.th.add(a, b, out=out)                  # out may be a strided view

    def nonzero(self, mask):
        return self.th.nonzero(mask).flatten()

    def arange(self, n: int):
        return self.th.arange(n, dtype=self.th.int64, device=self.device)


NUMPY = NumpyBackend()


def get_backend(device=None):
    """The backend of ``device``: numpy for ``None``, torch on that device otherwise.

    :param device: ``None`` (numpy on the host), a device name (``"cpu"``, ``"cuda"``,
        ``"cuda:1"``) or a ``torch.device``.
    :raises ValueError: not a device, or a CUDA device on a machine without one.
    """
    if device is None:
        return NUMPY
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device must be None (numpy engine), a torch device name ('cpu', "
                         f"'cuda', 'cuda:1') or a torch.device; got {device!r}") from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={str(device)!r} but torch sees no CUDA device; pass "
                         "device='cpu' (torch engine) or None (numpy engine)")
    return TorchBackend(dev)


class TensorTileRenderer:
    """:class:`memagent.envs.render.TileRenderer`'s frames, drawn with torch on a device.

    The same pixels as the numpy renderer (tested): for every tile column ``j`` of the view,
    each output pixel row of a frame is one row of a sprite, so a batch of frames is one
    gather of sprite rows per tile column (``(M, H)`` rows of ``w_j * 3`` bytes), without
    the numpy renderer's host-side cache of row strips.

    :param heights: pixel height of each tile row.
    :param widths: pixel width of each tile column.
    :param xp: the torch backend.
    """

    def __init__(self, heights: list[int], widths: list[int], xp: TorchBackend):
        from memagent.envs.render import N_SPRITES, sprites

        self.h, self.w = sum(heights), sum(widths)
        hmax = self.hmax = max(heights)
        classes = sorted(set(heights))
        n_ids = 2 * N_SPRITES
        # per column width: (classes, ids, hmax, w*3) sprite rows, padded to hmax rows
        self.tables = {}
        for w in set(widths):
            table = np.zeros((len(classes), n_ids, hmax, w * 3), dtype=np.uint8)
            for c, h in enumerate(classes):
                table[c, :, :h] = sprites(h, w).reshape(n_ids, h, w * 3)
            self.tables[w] = xp.asarray(table.reshape(-1, w * 3))
        tile_row = np.repeat(np.arange(len(heights)), heights)                       # (H,)
        sub_row = np.concatenate([np.arange(h) for h in heights])                    # (H,)
        row_class = np.array([classes.index(h) for h in heights])[tile_row]
        self.tile_row = xp.asarray(tile_row)
        self.row_offset = xp.asarray((row_class * n_ids * hmax + sub_row).astype(np.int64))
        self.widths = list(widths)
        self.col_bytes = np.concatenate([[0], np.cumsum(widths) * 3]).tolist()
        self.xp = xp

    def render(self, ids, out=None):
        """Frames of sprite ids ``(M, rows, cols)``: ``(M, H, W, 3) uint8`` (into ``out`` if given)."""
        th = self.xp.th
        m = ids.shape[0]
        if out is None:
            out = th.empty((m, self.h, self.w, 3), dtype=th.uint8, device=self.xp.device)
        rows = out.view(m, self.h, self.w * 3)
        per_row = ids.long()[:, self.tile_row]                 # (M, rows, cols) -> (M, H, cols)
        for j, w in enumerate(self.widths):
            idx = per_row[:, :, j] * self.hmax + self.row_offset          # (M, H) sprite rows
            rows[:, :, self.col_bytes[j]:self.col_bytes[j + 1]] = \
                self.tables[w].index_select(0, idx.flatten()).view(m, self.h, w * 3)
        return out
