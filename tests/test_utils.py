"""memagent.utils.tune_malloc: freed large blocks are reused, not faulted in again."""

import platform
import resource
import sys

import pytest
import torch

from memagent.utils import tune_malloc


def _faults_for_big_tensors(n: int = 20, mb: int = 8) -> int:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for i in range(n):
        t = torch.empty(mb << 18)  # mb MB of float32
        t.fill_(float(i))  # touch every page
        del t
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


@pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
                    reason="mallopt is glibc's")
def test_tune_malloc_reuses_freed_pages():
    assert tune_malloc(trim_threshold=64 << 20, mmap_threshold=32 << 20)
    _faults_for_big_tensors(2)  # the first block faults in once
    pages = (8 << 20) // resource.getpagesize()
    # without the tuning, each 8 MB block is a fresh mmap: ~20 * 2048 faults
    assert _faults_for_big_tensors() < pages


def test_tune_malloc_is_false_off_linux(monkeypatch):
    monkeypatch.setattr(sys, "platform", "darwin")
    assert tune_malloc() is False
