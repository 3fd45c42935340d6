"""Small helpers every part of memagent shares: seeding, device choice, atomic writes."""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path


def set_seed(seed: int | None) -> None:
    """Seed python's ``random``, numpy and torch (CPU and CUDA) from one ``seed``.

    Envs and action spaces are seeded by whoever owns them (``env.reset(seed=seed)``,
    ``VecEnv.seed``); SB3 algorithms do both when given ``seed``.
    """
    if seed is None:
        return
    from stable_baselines3.common.utils import set_random_seed

    set_random_seed(int(seed))


def resolve_device(device: str = "auto", n_params: int | None = None):
    """Resolve ``"auto" | "cpu" | "cuda[:i]"`` once, with SB3's ``get_device``.

    :param device: the requested device.
    :param n_params: the size of the network that will run there; when CUDA was chosen
        for a network under 100k parameters a warning says the CPU is likely faster.
    :return: a ``torch.device``.
    """
    from stable_baselines3.common.utils import get_device

    if device not in ("auto", "cpu") and not str(device).startswith(("cuda", "mps")):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda[:index]', got {device!r}")
    dev = get_device(device)
    if dev.type == "cuda" and n_params is not None and n_params < 100_000:
        warnings.warn(
            f"training a {n_params:,}-parameter network on CUDA: networks this small usually "
            "run faster on the CPU (pass device='cpu')",
            stacklevel=2,
        )
    return dev


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Write a file so that a crash mid-write leaves the previous version readable.

    ``write(tmp_path)`` writes the new content to a temporary file in the same folder,
    which is then fsynced and renamed over ``path`` (``os.replace`` is atomic on POSIX).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a checkpoint gets the usual mode
    try:
        write(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
