"""The four generated data sets of Neural Memory Networks (Biggs & Nuttall, section IV).

Every task is a fixed problem (its Gaussians, its class order) drawn from ``seed``, from which
:meth:`NMNTask.sample` draws as many independent sequences as asked. A batch is time-major
like every memory core in memagent: ``inputs (T, N, F)`` and ``targets (T, N, heads)`` (class
indices; ``-1`` where nothing is scored) with ``groups (T, N, heads)`` naming which error rate
each target counts towards. Each column is one episode: the memory starts empty at ``t = 0``.

- ``sorted``: points from 10 Gaussian classes, drawn in a fixed (random) cyclic order; classify
  each point (IV.A). The classes overlap (``sigma`` puts a memory-less classifier near the
  paper's 4.5 %), so knowing the previous class helps.
- ``recall``: classification and recall (IV.B): classes drawn at random; output the current
  class and the previous two, in order (three heads).
- ``memory``: memory recall (IV.C): ``length`` random 5-bit numbers, then ``length`` zero
  vectors; during the zeros output the stored numbers in order (one head per bit).
- ``extended``: extended recall (IV.D): a key (one of 3 classes, on its own channel), then
  distractors to classify as they come, and ``delay`` steps after the key a query whose label
  is the key; the error is reported for the current and the long-term labels apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

TASKS = ("sorted", "recall", "memory", "extended")


class NMNBatch(NamedTuple):
    inputs: np.ndarray  # (T, N, F) float32
    targets: np.ndarray  # (T, N, heads) int64, -1 = not scored
    groups: np.ndarray  # (T, N, heads) int64, index into NMNTask.group_names, -1 = not scored


@dataclass
class NMNTask:
    """One generated data set.

    :param name: one of ``TASKS``.
    :param n_inputs: ``F``.
    :param n_heads: outputs per step, each a ``n_classes``-way classification.
    :param n_classes: classes per head.
    :param group_names: the error rates reported (e.g. ``("current", "long-term")``).
    :param paper: the paper's figures per model and group, in percent (``None``: not given).
    """

    name: str
    n_inputs: int
    n_heads: int
    n_classes: int
    group_names: tuple[str, ...]
    sampler: object = field(repr=False)
    paper: dict = field(default_factory=dict)

    def sample(self, n: int, rng: np.random.Generator) -> NMNBatch:
        """``n`` independent sequences."""
        return self.sampler(n, rng)


def _circle_means(n_classes: int, rng: np.random.Generator) -> np.ndarray:
    """Class means on the unit circle, the classes in random places along it: ``(C, 2)``."""
    angles = 2 * np.pi * rng.permutation(n_classes) / n_classes + rng.uniform(0, 2 * np.pi)
    return np.stack([np.cos(angles), np.sin(angles)], axis=1)


def sorted_classification(seed: int = 0, length: int = 20, n_classes: int = 10,
                          sigma: float = 0.155) -> NMNTask:
    """IV.A. With 10 classes 0.618 apart, ``sigma=0.155`` gives a Bayes error near 4.5 %."""
    rng = np.random.default_rng(seed)
    means, order = _circle_means(n_classes, rng), rng.permutation(n_classes)

    def sample(n, rng):
        phase = rng.integers(0, n_classes, size=(1, n))
        labels = order[(np.arange(length)[:, None] + phase) % n_classes]  # (T, N)
        x = means[labels] + sigma * rng.standard_normal((length, n, 2))
        y = labels[..., None]
        return NMNBatch(x.astype(np.float32), y.astype(np.int64), np.zeros_like(y))

    return NMNTask("sorted", 2, 1, n_classes, ("error",), sample,
                   {"FFNN": {"error": 4.5}, "NMN": {"error": 0.7}, "RNN": {"error": 1.8}})


def classification_recall(seed: int = 0, length: int = 20, n_classes: int = 4,
                          sigma: float = 0.1) -> NMNTask:
    """IV.B: heads = (current class, previous class, the one before); the first steps'
    missing history is not scored."""
    rng = np.random.default_rng(seed)
    means = _circle_means(n_classes, rng)

    def sample(n, rng):
        labels = rng.integers(0, n_classes, size=(length, n))
        x = means[labels] + sigma * rng.standard_normal((length, n, 2))
        y = np.full((length, n, 3), -1, dtype=np.int64)
        y[:, :, 0] = labels
        y[1:, :, 1] = labels[:-1]
        y[2:, :, 2] = labels[:-2]
        return NMNBatch(x.astype(np.float32), y, np.where(y >= 0, 0, -1))

    return NMNTask("recall", 2, 3, n_classes, ("error",), sample,
                   {"NMN": {"error": 7.0}, "RNN": {"error": 0.1}})


def memory_recall(seed: int = 0, length: int = 2, bits: int = 5) -> NMNTask:
    """IV.C: numbers 1 .. 2**bits - 1 (never zero, which would look like the read signal)."""
    del seed  # nothing fixed to draw: every sequence is independent

    def sample(n, rng):
        numbers = rng.integers(1, 2 ** bits, size=(length, n))
        code = (numbers[..., None] >> np.arange(bits)[::-1]) & 1  # (L, N, bits)
        x = np.concatenate([code, np.zeros_like(code)], axis=0)  # (2L, N, bits)
        y = np.full((2 * length, n, bits), -1, dtype=np.int64)
        y[length:] = code
        return NMNBatch(x.astype(np.float32), y, np.where(y >= 0, 0, -1))

    return NMNTask("memory", bits, bits, 2, ("bit error",), sample, {})


def extended_recall(seed: int = 0, delay: int = 25, n_classes: int = 3) -> NMNTask:
    """IV.D. Inputs: current class one-hot, key one-hot, query flag (``2 C + 1``). Step 0 shows
    the key (its label: the key), steps 1 .. delay-1 distractors (label: their class), step
    ``delay`` the query (label: the key, 25 inputs back with the default ``delay``)."""
    del seed
    C = n_classes

    def sample(n, rng):
        T = delay + 1
        labels = rng.integers(0, C, size=(T, n))
        x = np.zeros((T, n, 2 * C + 1), dtype=np.float32)
        cols = np.arange(n)
        x[0, cols, C + labels[0]] = 1  # the key, on its own channel
        for t in range(1, delay):
            x[t, cols, labels[t]] = 1
        x[delay, :, 2 * C] = 1  # the query
        labels[delay] = labels[0]
        groups = np.zeros((T, n, 1), dtype=np.int64)
        groups[delay] = 1
        return NMNBatch(x, labels[..., None].astype(np.int64), groups)

    return NMNTask("extended", 2 * C + 1, 1, C, ("current", "long-term"), sample,
                   {"RNN": {"current": 0.0, "long-term": 66.0},
                    "NMN": {"current": 0.0, "long-term": 0.0}})


def make_task(name: str, seed: int = 0, **kwargs) -> NMNTask:
    """One of ``TASKS`` by name; ``kwargs`` go to its generator (``length``, ``delay``, ...)."""
    makers = {"sorted": sorted_classification, "recall": classification_recall,
              "memory": memory_recall, "extended": extended_recall}
    if name not in makers:
        raise ValueError(f"task must be one of {TASKS}, got {name!r}")
    return makers[name](seed=seed, **kwargs)
