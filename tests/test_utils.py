"""memagent.utils.tune_malloc: large blocks come from the heap and stay there once freed."""

import json
import platform
import subprocess
import sys

import pytest

from memagent.utils import tune_malloc

# In a fresh interpreter: glibc's own account (mallinfo2) while an 8 MB tensor is alive and
# after it is freed. hblkhd: bytes in blocks that have their own mmap (unmapped on free, so
# faulted in anew next time), counted from just before the allocation; fordblks: free bytes
# kept in the heap for reuse.
_PROBE = """
import ctypes, json, sys, torch
from memagent.utils import tune_malloc

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
tuned = sys.argv[1] == "tuned" and tune_malloc()
before = libc.mallinfo2()
t = torch.empty(8 << 18)  # 8 MB
t.fill_(1.0)
alive = libc.mallinfo2()
del t
freed = libc.mallinfo2()
print(json.dumps({"tuned": tuned, "mmapped_alive": alive.hblkhd - before.hblkhd,
                  "kept_free": freed.fordblks}))
"""


def _probe(mode: str) -> dict:
    out = subprocess.run([sys.executable, "-c", _PROBE, mode], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _has_mallinfo2() -> bool:
    import ctypes

    try:
        return hasattr(ctypes.CDLL("libc.so.6"), "mallinfo2")
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc"
                    or not _has_mallinfo2(), reason="mallopt and mallinfo2 are glibc's (>= 2.33)")
def test_tune_malloc_keeps_large_blocks_in_the_heap():
    mb8 = 8 << 20
    plain, tuned = _probe("plain"), _probe("tuned")
    # glibc's default: an 8 MB block is its own mmap, unmapped again when freed
    assert plain["mmapped_alive"] >= mb8 and plain["kept_free"] < mb8
    # tuned: it comes from the heap, and the freed 8 MB stay there for the next minibatch
    assert tuned["tuned"] is True
    assert tuned["mmapped_alive"] < mb8 and tuned["kept_free"] >= mb8


def test_tune_malloc_is_false_off_linux(monkeypatch):
    monkeypatch.setattr(sys, "platform", "darwin")
    assert tune_malloc() is False


def test_choose_device_auto(monkeypatch):
    import torch

    from memagent.utils import AUTO_CUDA_MIN_ENVS, choose_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    dev, why = choose_device("auto", 4096)
    assert dev.type == "cpu" and "no CUDA device" in why and "\n" not in why
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "Fake GPU")
    dev, why = choose_device("auto", AUTO_CUDA_MIN_ENVS - 1)
    assert dev.type == "cpu" and "too small a batch" in why and "--device cuda" in why
    dev, why = choose_device("auto", AUTO_CUDA_MIN_ENVS)
    assert dev.type == "cuda" and "Fake GPU" in why
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert choose_device("cpu", 8) == (torch.device("cpu"), "")


_THREADS_PROBE = """
import json, os
from memagent.utils import cpu_threads
n = cpu_threads(1)
print(json.dumps({k: os.environ.get(k) for k in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}))
"""


@pytest.mark.parametrize("env, expect", [
    ({}, {"GOMP_SPINCOUNT": "1000", "OMP_WAIT_POLICY": None}),
    ({"OMP_WAIT_POLICY": "PASSIVE"}, {"GOMP_SPINCOUNT": None, "OMP_WAIT_POLICY": "PASSIVE"}),
    ({"GOMP_SPINCOUNT": "5"}, {"GOMP_SPINCOUNT": "5", "OMP_WAIT_POLICY": None}),
])
def test_cpu_threads_bounds_the_openmp_spin_unless_the_environment_says(env, expect):
    """Before torch loads, cpu_threads caps libgomp's spin-wait at 1,000 rounds (the default
    300,000 made a step 2.5x slower beside two busy processes); a wait policy or a spin count
    the user set wins."""
    import os

    clean = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    out = subprocess.run([sys.executable, "-c", _THREADS_PROBE], capture_output=True, text=True,
                         check=True, env={**clean, **env})
    assert json.loads(out.stdout.strip().splitlines()[-1]) == expect
