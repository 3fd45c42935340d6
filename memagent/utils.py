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


def cpu_threads(n: int | None = None) -> int:
    """Torch's CPU threads for a single-process command: ``n``, default every core this process
    may run on (``os.sched_getaffinity``). Returns the count set.

    Before torch is first imported it also sets ``GOMP_SPINCOUNT=1000`` (unless the
    environment sets it or ``OMP_WAIT_POLICY``): torch's OpenMP threads (libgomp) that wait
    spin 1,000 rounds, then sleep. libgomp's default spins 300,000: on a CPU that other jobs
    share, spinning threads take turns with those jobs, and one step of a small network took
    12x as long with 2 threads as with 1 (1,035 vs 86 ms, load average 5 on 2 cores).
    Sleeping at once (``OMP_WAIT_POLICY=PASSIVE``, the earlier setting) cures that and costs
    ~40% on an idle CPU, where every wake-up is paid for. A memory step of ``memagent imagine``
    (2 threads, ms): idle 22-26 (1,000 spins), 32-34 (passive), 22-27 (default); beside two
    busy processes 44-57, 34-45, 113. The results do not depend on the policy.
    """
    import sys

    if n is not None and n < 1:
        raise ValueError(f"threads must be >= 1, got {n}")
    if "torch" not in sys.modules:
        if "OMP_WAIT_POLICY" not in os.environ:
            os.environ.setdefault("GOMP_SPINCOUNT", "1000")
    import torch

    count = int(n) if n is not None else len(os.sched_getaffinity(0))
    torch.set_num_threads(count)
    return count


def tune_malloc(trim_threshold: int = 128 << 20, mmap_threshold: int = 32 << 20) -> bool:
    """Make glibc's ``malloc`` keep freed memory for reuse instead of returning it at once.

    Training allocates and frees a few large tensors every minibatch (the Hopfield core's
    ``(B, heads * T, N)`` attention scores are ~2.4 MB). glibc serves each from fresh pages
    (``mmap``, or heap it trimmed after the last free), and every page faults in zeroed on
    first touch: ~7,900 faults and 13 ms of kernel time per 1,024-step rollout of a Hopfield
    MemoryPPO run on one core (600 and 2 ms with this). With these thresholds (``mallopt``; the same as
    ``MALLOC_TRIM_THRESHOLD_`` / ``MALLOC_MMAP_THRESHOLD_``) the pages stay mapped and are
    reused. The process keeps up to ``trim_threshold`` bytes of freed heap.

    The setting is process-wide, so the library never makes it on import: the ``memagent``
    command calls this at start (its own process; ``MEMAGENT_TUNE_MALLOC=0`` turns it off) and
    scripts may opt in by calling it once. ``memagent bench policies`` measures its gain.

    :return: whether both settings took (``False`` off glibc, e.g. on macOS or musl, or when
        ``MEMAGENT_TUNE_MALLOC=0``).
    """
    import ctypes
    import sys

    if not sys.platform.startswith("linux") or os.environ.get("MEMAGENT_TUNE_MALLOC", "1") == "0":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
    return bool(mallopt(m_trim_threshold, int(trim_threshold))
                and mallopt(m_mmap_threshold, int(mmap_threshold)))


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


#: ``device="auto"`` picks CUDA from this many envs stepped at once: below it a rollout step
#: is too small a batch to keep a GPU busy, and the CPU wins (a starting point, not yet
#: measured on a GPU: ``memagent bench gpu`` measures both sides).
AUTO_CUDA_MIN_ENVS = 1024


def choose_device(device: str, n_envs: int):
    """Resolve ``device`` for a run that steps ``n_envs`` envs at once; returns
    ``(torch.device, why)``, ``why`` one line saying why (for ``"auto"``; empty otherwise).

    ``"auto"``: CUDA when torch sees a GPU and ``n_envs >= AUTO_CUDA_MIN_ENVS``, else the CPU.
    Any other value goes through :func:`resolve_device` unchanged.
    """
    import torch

    if device != "auto":
        return resolve_device(device), ""
    if not torch.cuda.is_available():
        return torch.device("cpu"), "auto: CPU, torch sees no CUDA device"
    if n_envs < AUTO_CUDA_MIN_ENVS:
        return torch.device("cpu"), (
            f"auto: CPU, {n_envs} envs per step is too small a batch for the GPU (CUDA from "
            f"{AUTO_CUDA_MIN_ENVS} envs; --device cuda forces it)")
    return torch.device("cuda"), (
        f"auto: CUDA ({torch.cuda.get_device_name(0)}), {n_envs} envs per step "
        f">= {AUTO_CUDA_MIN_ENVS}: the envs and the rollout stay on the GPU")


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
