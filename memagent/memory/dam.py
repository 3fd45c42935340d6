"""The Dense Associative Memory (Krotov & Hopfield 2016, "Dense Associative Memory for
Pattern Recognition"), re-exported by :mod:`memagent.memory.hopfield`.

Energy (their eq. 1) over bipolar states ``sigma`` and memories ``xi_mu`` (trainable)::

    E(sigma) = -sum_mu F(xi_mu . sigma / T),   F(x) = x^n  or  max(x, 0)^n (rectified)

An asynchronous update sets unit ``i`` to the sign that gives the lower energy (eq. 2):
``sigma_i <- sign(sum_mu F(xi_mu . sigma|_{sigma_i=+1}) - F(xi_mu . sigma|_{sigma_i=-1}))``,
so the energy never increases. ``T`` (the paper's temperature) rescales the overlaps and
leaves the dynamics unchanged; it keeps ``x^n`` in floating-point range for large ``n``.

As a classifier (their section 3) the visible units are the pixels and ``C`` label units;
the label is read after one update of the label units, each computed with the other labels
at -1 (eq. 3): ``c_alpha = beta * sum_mu [F(xi . v + 2 xi_alpha - sum_gamma xi_gamma)
- F(xi . v - sum_gamma xi_gamma)] / T^n``-scaled. Memories are trained by gradient descent
and clipped to [-1, 1] as in the paper; the loss here is cross entropy on ``c`` (the paper
uses ``sum (tanh(c) - t)^(2m)``), with ``beta`` a trainable scale.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class DenseAssociativeMemory(nn.Module):
    """Dense Associative Memory with polynomial interaction of order ``n``.

    :param dim: the number of visible units ``D`` (pixels plus label units for a classifier).
    :param n_memories: the number of memories ``K`` (hidden units).
    :param n: the interaction order (>= 1; 2 is the classical Hopfield energy).
    :param rectified: ``F(x) = max(x, 0)^n`` instead of ``x^n``.
    :param temperature: ``T``, the overlap scale; ``None``: ``0.25 * dim``.
    :param n_labels: the trailing visible units that are label units (0: pure memory).
    :param seed: seed of the initial memories (normal, mean -0.3 in the paper; here 0, std 0.3).
    """

    def __init__(self, dim: int, n_memories: int = 100, n: int = 3, rectified: bool = True,
                 temperature: float | None = None, n_labels: int = 0, seed: int | None = 0):
        super().__init__()
        if int(n) != n or n < 1:
            raise ValueError(f"interaction order n must be an integer >= 1, got {n}")
        if not 0 <= n_labels < dim:
            raise ValueError(f"n_labels must be in [0, dim={dim}), got {n_labels}")
        self.dim, self.n, self.rectified, self.n_labels = dim, int(n), rectified, n_labels
        self.T = float(temperature) if temperature is not None else 0.25 * dim
        g = torch.Generator().manual_seed(0 if seed is None else seed)
        self.memories = nn.Parameter((0.3 * torch.randn(n_memories, dim, generator=g)).clamp(-1, 1))
        self.log_beta = nn.Parameter(torch.zeros(()))

    def F(self, x: Tensor) -> Tensor:
        """The interaction function of the overlap ``x`` (already divided by ``T``)."""
        return (x.clamp_min(0.0) if self.rectified else x) ** self.n

    def _check(self, states: Tensor, dim: int) -> None:
        if states.shape[-1] != dim:
            raise ValueError(f"states have {states.shape[-1]} units, the memory expects {dim}")

    def energy(self, states: Tensor) -> Tensor:
        """``E = -sum_mu F(xi_mu . sigma / T)``: ``(..., D) -> (...)``."""
        self._check(states, self.dim)
        return -self.F(states @ self.memories.t() / self.T).sum(-1)

    @torch.no_grad()
    def relax(self, states: Tensor, sweeps: int = 5, clamped: Tensor | None = None,
              generator: torch.Generator | None = None, return_energies: bool = False):
        """Asynchronous energy descent on bipolar ``states (Q, D)`` (eq. 2), random unit order.

        :param clamped: ``(D,)`` bool, units that keep their value (e.g. the pixels).
        :return: the relaxed states, and the energy after every unit update ``(U, Q)`` if asked.
        """
        self._check(states, self.dim)
        xi = self.memories / self.T  # (K, D)
        s = states.to(xi).clone()
        h = s @ xi.t()  # (Q, K) overlaps, updated incrementally
        energies = [-self.F(h).sum(-1)]
        free = torch.arange(self.dim) if clamped is None else (~clamped).nonzero().flatten()
        for _ in range(sweeps):
            changed = False
            for i in free[torch.randperm(len(free), generator=generator)].tolist():
                rest = h - s[:, i:i + 1] * xi[:, i]  # (Q, K) overlaps without unit i
                delta = (self.F(rest + xi[:, i]) - self.F(rest - xi[:, i])).sum(-1)  # (Q,)
                new = torch.where(delta == 0, s[:, i], torch.sign(delta))
                changed |= bool((new != s[:, i]).any())
                s[:, i] = new
                h = rest + new[:, None] * xi[:, i]
                if return_energies:
                    energies.append(-self.F(h).sum(-1))
            if not changed:
                break
        return (s, torch.stack(energies)) if return_energies else s

    def label_logits(self, pixels: Tensor) -> Tensor:
        """One update of the label units from ``pixels (Q, D - C)`` in [-1, 1]: ``(Q, C)``.

        Each label unit ``alpha`` is scored by the energy drop of switching it on with the
        other labels at -1 (eq. 3), times ``beta``; the argmax is the recalled label.
        """
        C = self.n_labels
        if C == 0:
            raise ValueError("label_logits needs a classifier: build the DAM with n_labels > 0")
        self._check(pixels, self.dim - C)
        xi = self.memories / self.T
        xi_v, xi_l = xi[:, :-C], xi[:, -C:]  # (K, D - C), (K, C)
        base = pixels @ xi_v.t() - xi_l.sum(-1)  # (Q, K): every label at -1
        on = self.F(base[:, :, None] + 2 * xi_l[None])  # (Q, K, C): label alpha switched on
        delta = (on - self.F(base)[:, :, None]).sum(1)  # (Q, C)
        return self.log_beta.exp() * delta

    def predict(self, pixels: Tensor) -> Tensor:
        """The recalled label of each image ``(Q, D - C) -> (Q,)``."""
        with torch.no_grad():
            return self.label_logits(pixels).argmax(-1)

    @torch.no_grad()
    def clip_(self) -> None:
        """Keep memories in [-1, 1] (the paper's constraint), after each optimiser step."""
        self.memories.clamp_(-1.0, 1.0)
