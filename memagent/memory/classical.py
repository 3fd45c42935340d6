"""Bipolar associative memories (re-exported by :mod:`memagent.memory.hopfield`).

- :class:`ClassicalHopfield`: Hopfield (1982), Hebbian weights ``W = (1/D) sum xi xi^T``,
  energy ``E = -1/2 s^T W s``; in the Universal Hopfield framework (Millidge et al. 2022,
  section 3) dot similarity, identity separation and a sign on the projection.
- :class:`SparseDistributedMemory`: Kanerva (1988); in the framework, Hamming similarity,
  threshold separation, projection onto the counters.
"""

from __future__ import annotations

import torch
from torch import Tensor


def bipolar(x: Tensor) -> Tensor:
    """``sign(x - 0.5)`` with 0 -> +1: maps {0, 1} (or [0, 1]) data to {-1, +1}."""
    return torch.where(x >= 0.5, 1.0, -1.0).to(x.dtype if x.is_floating_point() else torch.float32)


class ClassicalHopfield(torch.nn.Module):
    """The classical Hopfield network (Hopfield 1982): Hebbian weights, bipolar states.

    ``W = (1/D) sum_mu xi_mu xi_mu^T`` with zero diagonal; energy ``E = -1/2 s^T W s``;
    each unit update ``s_i <- sign(W_i . s)`` never increases ``E`` (asynchronous updates).
    In the UHN framework its synchronous update is dot similarity, identity separation and a
    sign on the projection. Capacity is about ``0.138 D`` random patterns.

    :param dim: the number of units ``D``.
    """

    def __init__(self, dim: int):
        super().__init__()
        self.register_buffer("W", torch.zeros(dim, dim))

    def store(self, patterns: Tensor) -> ClassicalHopfield:
        """Add bipolar ``patterns (N, D)`` in {-1, +1} to the weights (Hebb's rule)."""
        patterns = patterns.to(self.W)
        if patterns.dim() != 2 or patterns.shape[1] != self.W.shape[0]:
            raise ValueError(f"patterns must have shape (N, {self.W.shape[0]}), got {tuple(patterns.shape)}")
        self.W += patterns.t() @ patterns / self.W.shape[0]  # (D, N) @ (N, D) -> (D, D)
        self.W.fill_diagonal_(0.0)
        return self

    def energy(self, states: Tensor) -> Tensor:
        """``E = -1/2 s^T W s``: ``(..., D) -> (...)``."""
        return -0.5 * ((states @ self.W) * states).sum(-1)

    def step(self, states: Tensor) -> Tensor:
        """One synchronous update ``s <- sign(W s)`` (ties keep the old state)."""
        h = states @ self.W
        return torch.where(h == 0, states, torch.sign(h))

    def recall(self, states: Tensor, sweeps: int = 10, generator: torch.Generator | None = None,
               return_energies: bool = False):
        """Asynchronous updates in a random order per sweep, until no unit changes.

        :param states: ``(Q, D)`` bipolar probes (batched: every query updates unit ``i`` together).
        :param sweeps: the most sweeps over all units.
        :return: the final states, and the energy after every unit update if asked ``(U, Q)``.
        """
        s, energies = states.to(self.W).clone(), [self.energy(states.to(self.W))]
        for _ in range(sweeps):
            before = s.clone()
            for i in torch.randperm(s.shape[-1], generator=generator).tolist():
                h = s @ self.W[:, i]  # (Q,)
                s[:, i] = torch.where(h == 0, s[:, i], torch.sign(h))
                if return_energies:
                    energies.append(self.energy(s))
            if torch.equal(before, s):
                break
        return (s, torch.stack(energies)) if return_energies else s


class SparseDistributedMemory(torch.nn.Module):
    """Kanerva's sparse distributed memory (1988), autoassociative, bipolar data.

    ``A (M, D)`` random hard-location addresses, ``C (M, D)`` counters. Writing pattern ``x``
    adds ``x`` to the counters of every location within Hamming distance ``radius`` of
    ``x``; reading ``q`` sums the counters of the locations within ``radius`` of ``q`` and
    takes the sign. In the UHN framework: Hamming similarity, threshold separation and
    projection onto the counters.

    :param dim: the pattern dimension ``D``.
    :param n_locations: the number of hard locations ``M``.
    :param radius: activation radius in bits; ``None`` picks the radius that activates about
        ``p_activate`` of the locations for a random address.
    :param seed: seed of the random addresses.
    """

    def __init__(self, dim: int, n_locations: int = 1000, radius: int | None = None,
                 p_activate: float = 0.05, seed: int | None = 0):
        super().__init__()
        if not 0 < p_activate < 1 or n_locations < 1:
            raise ValueError(f"need 0 < p_activate < 1 and n_locations >= 1, got {p_activate}, "
                             f"{n_locations}")
        g = torch.Generator().manual_seed(0 if seed is None else seed)
        self.register_buffer("A", torch.randint(0, 2, (n_locations, dim), generator=g).float() * 2 - 1)
        self.register_buffer("C", torch.zeros(n_locations, dim))
        if radius is None:  # Hamming distance of random bits ~ Binomial(D, 1/2)
            z = torch.special.ndtri(torch.tensor(float(p_activate))).item()
            radius = int(round(dim / 2 + z * dim**0.5 / 2))
        self.radius = int(radius)

    def active(self, x: Tensor) -> Tensor:
        """Which locations ``x (Q, D)`` activates: ``(Q, M)`` float in {0, 1}."""
        if x.shape[-1] != self.A.shape[1]:
            raise ValueError(f"patterns have dimension {x.shape[-1]}, the memory {self.A.shape[1]}")
        hamming = (self.A.shape[1] - x.to(self.A) @ self.A.t()) / 2  # bipolar: d = (D - x.a) / 2
        return (hamming <= self.radius).to(self.A.dtype)

    def write(self, patterns: Tensor, data: Tensor | None = None) -> SparseDistributedMemory:
        """Store ``data (N, D)`` (default: the patterns, autoassociative) at ``patterns``."""
        data = patterns if data is None else data
        self.C += self.active(patterns).t() @ data.to(self.C)  # (M, N) @ (N, D) -> (M, D)
        return self

    def read(self, queries: Tensor, iterations: int = 1) -> Tensor:
        """``sign(sum of active counters)``, iterated; ``(Q, D) -> (Q, D)`` bipolar."""
        x = queries.to(self.C)
        for _ in range(iterations):
            h = self.active(x) @ self.C  # (Q, M) @ (M, D) -> (Q, D)
            x = torch.where(h == 0, x, torch.sign(h))
        return x
