"""Associative memory as one operation: Universal Hopfield Networks (Millidge et al. 2022).

Every single-shot associative memory is ``z = projection(separation(similarity(M, q)))``
(paper eq. 1): the query ``q`` is scored against the stored patterns (keys) ``M``, the
scores are sharpened by a separation function, and the output is the weighted sum of the
stored patterns, or of separate values ``P`` for heteroassociation (``z = P^T sep(sim(M, q))``).

:func:`retrieve` is that operation, batched over any leading dimensions, masked, on any
device, and differentiable for every separation but ``max`` and ``topk``'s selection.

Similarities (``(..., Q, D), (..., N, D) -> (..., Q, N)``; larger = closer):

- ``dot``: ``q . m``; ``cosine``: ``q . m / (|q| |m|)``;
- ``euclidean``: ``-|q - m|_2``; ``manhattan``: ``-|q - m|_1`` (negative distances);
- ``inv_euclidean``: ``1 / |q - m|_2^2``; ``inv_manhattan``: ``1 / |q - m|_1`` (the official
  code's inverse distances; also ``similarity="euclidean", inverse=True``). They are
  positive, so polynomial and identity separations keep their order.

Separations (``scores (..., Q, N) -> weights (..., Q, N)``):

- ``identity``: ``s``; ``polynomial``: ``s ** n`` (``rectified=True``: ``max(s, 0) ** n``);
  both normalised as in the official code, ``p / sum(|p|)`` (``normalize=False`` to skip);
- ``softmax``: ``softmax(beta * s)`` (the modern Hopfield network, Ramsauer et al. eq. 3);
- ``max``: one-hot at the argmax (the limit of softmax as ``beta -> inf``);
- ``topk``: ``softmax(beta * s)`` over the ``k`` largest scores, zero elsewhere.

The models built from it are :class:`ClassicalHopfield`, :class:`SparseDistributedMemory`,
:class:`ModernHopfield` and :class:`DenseAssociativeMemory` (below).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "SIMILARITIES", "SEPARATIONS", "get_similarity", "get_separation", "retrieve",
    "dot_similarity", "cosine_similarity", "euclidean_similarity", "manhattan_similarity",
    "inv_euclidean_similarity", "inv_manhattan_similarity",
    "identity_separation", "softmax_separation", "polynomial_separation", "max_separation",
    "topk_separation", "bipolar", "ClassicalHopfield", "SparseDistributedMemory",
    "ModernHopfield", "DenseAssociativeMemory", "UniversalHopfield",
]

_EPS = 1e-8

# ---------------------------------------------------------------------------- similarities


def dot_similarity(queries: Tensor, keys: Tensor) -> Tensor:
    """``q . m``: ``(..., Q, D), (..., N, D) -> (..., Q, N)``."""
    return queries @ keys.transpose(-1, -2)


def cosine_similarity(queries: Tensor, keys: Tensor) -> Tensor:
    """``q . m / (|q| |m|)`` in [-1, 1]."""
    return F.normalize(queries, dim=-1, eps=_EPS) @ F.normalize(keys, dim=-1, eps=_EPS).transpose(-1, -2)


def euclidean_similarity(queries: Tensor, keys: Tensor) -> Tensor:
    """``-|q - m|_2`` (negative Euclidean distance)."""
    return -torch.cdist(queries, keys, p=2.0)


def manhattan_similarity(queries: Tensor, keys: Tensor) -> Tensor:
    """``-|q - m|_1`` (negative Manhattan distance)."""
    return -torch.cdist(queries, keys, p=1.0)


def inv_euclidean_similarity(queries: Tensor, keys: Tensor) -> Tensor:
    """``1 / |q - m|_2^2``, the official code's Euclidean similarity."""
    return 1.0 / (torch.cdist(queries, keys, p=2.0).square() + _EPS)


def inv_manhattan_similarity(queries: Tensor, keys: Tensor) -> Tensor:
    """``1 / |q - m|_1``, the official code's Manhattan similarity."""
    return 1.0 / (torch.cdist(queries, keys, p=1.0) + _EPS)


SIMILARITIES: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "dot": dot_similarity, "cosine": cosine_similarity,
    "euclidean": euclidean_similarity, "manhattan": manhattan_similarity,
    "inv_euclidean": inv_euclidean_similarity, "inv_manhattan": inv_manhattan_similarity,
}

# ----------------------------------------------------------------------------- separations


def _normalise(p: Tensor) -> Tensor:
    """``p / sum(|p|)`` over the memories (the official code's ``p / p.sum()``, sign-safe)."""
    total = p.abs().sum(-1, keepdim=True)
    return p / torch.where(total > 0, total, torch.ones_like(total))


def identity_separation(scores: Tensor, beta: float = 1.0, mask: Tensor | None = None,
                        normalize: bool = True) -> Tensor:
    """``p = s`` (masked entries 0), normalised to ``sum |p| = 1`` unless ``normalize=False``."""
    p = scores if mask is None else scores.masked_fill(~mask, 0.0)
    return _normalise(p) if normalize else p


def polynomial_separation(scores: Tensor, beta: float = 1.0, mask: Tensor | None = None,
                          n: int = 2, rectified: bool = False, normalize: bool = True) -> Tensor:
    """``p = s ** n`` (``rectified``: ``max(s, 0) ** n``), normalised unless ``normalize=False``.

    :param n: the degree, an integer >= 1.
    """
    if int(n) != n or n < 1:
        raise ValueError(f"polynomial separation needs an integer degree n >= 1, got n={n}")
    s = scores.clamp_min(0.0) if rectified else scores
    if normalize:  # the normalisation cancels any scale: divide first so s**n cannot under/overflow
        s = s / s.detach().abs().amax(-1, keepdim=True).clamp_min(torch.finfo(s.dtype).tiny)
    p = s ** int(n)
    if mask is not None:
        p = p.masked_fill(~mask, 0.0)
    return _normalise(p) if normalize else p


def softmax_separation(scores: Tensor, beta: float = 1.0, mask: Tensor | None = None) -> Tensor:
    """``softmax(beta * s)`` over the memories; rows with nothing to attend give zeros."""
    z = beta * scores
    if mask is None:
        return torch.softmax(z, dim=-1)
    # A finite fill (not -inf) keeps fully masked rows free of NaN, in values and gradients.
    z = z.masked_fill(~mask, torch.finfo(z.dtype).min)
    return torch.softmax(z, dim=-1) * mask


def max_separation(scores: Tensor, beta: float = 1.0, mask: Tensor | None = None) -> Tensor:
    """One-hot at the largest score (ties: the first); fully masked rows give zeros."""
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    out = F.one_hot(scores.argmax(-1), scores.shape[-1]).to(scores.dtype)
    return out if mask is None else out * mask.any(-1, keepdim=True)


def topk_separation(scores: Tensor, beta: float = 1.0, mask: Tensor | None = None,
                    k: int = 5) -> Tensor:
    """``softmax(beta * s)`` restricted to the ``k`` largest scores (``k=1``: max)."""
    if int(k) != k or k < 1:
        raise ValueError(f"topk separation needs an integer k >= 1, got k={k}")
    k = min(int(k), scores.shape[-1])
    masked = scores if mask is None else scores.masked_fill(~mask, float("-inf"))
    idx = masked.topk(k, dim=-1).indices
    keep = torch.zeros_like(scores, dtype=torch.bool).scatter_(-1, idx, True)
    if mask is not None:
        keep = keep & mask
    return softmax_separation(scores, beta, keep)


SEPARATIONS: dict[str, Callable[..., Tensor]] = {
    "identity": identity_separation, "softmax": softmax_separation,
    "polynomial": polynomial_separation, "max": max_separation, "topk": topk_separation,
}


def get_similarity(name: str | Callable, inverse: bool = False) -> Callable[[Tensor, Tensor], Tensor]:
    """The similarity function called ``name`` (or ``name`` itself if it is callable).

    :param inverse: use the inverse distance (``euclidean``/``manhattan`` only).
    """
    if callable(name):
        return name
    if inverse:
        if name not in ("euclidean", "manhattan"):
            raise ValueError(f"inverse=True applies to 'euclidean' or 'manhattan', not {name!r}")
        name = f"inv_{name}"
    if name not in SIMILARITIES:
        raise ValueError(f"unknown similarity {name!r}; known: {', '.join(SIMILARITIES)} "
                         "(or pass a callable (queries, keys) -> scores)")
    return SIMILARITIES[name]


def get_separation(name: str | Callable) -> Callable[..., Tensor]:
    """The separation function called ``name`` (or ``name`` itself if it is callable)."""
    if callable(name):
        return name
    if name not in SEPARATIONS:
        raise ValueError(f"unknown separation {name!r}; known: {', '.join(SEPARATIONS)} "
                         "(or pass a callable (scores, beta, mask, **kwargs) -> weights)")
    return SEPARATIONS[name]


# ----------------------------------------------------------------------------- retrieval


def _check(queries: Tensor, keys: Tensor, values: Tensor, beta: float, mask: Tensor | None):
    if queries.dim() < 2 or keys.dim() < 2:
        raise ValueError(f"queries and keys need shapes (..., Q, D) and (..., N, D), got "
                         f"{tuple(queries.shape)} and {tuple(keys.shape)}")
    if queries.shape[-1] != keys.shape[-1]:
        raise ValueError(f"queries have dimension D={queries.shape[-1]} but the stored "
                         f"patterns (keys) have D={keys.shape[-1]}: they must match")
    if values.shape[-2] != keys.shape[-2]:
        raise ValueError(f"values hold {values.shape[-2]} patterns but keys hold "
                         f"{keys.shape[-2]}: give one value per key")
    if not beta > 0:
        raise ValueError(f"beta (inverse temperature) must be > 0, got {beta}")
    if mask is not None and mask.dtype != torch.bool:
        raise ValueError(f"mask must be a bool tensor (True = may attend), got {mask.dtype}")


def _max_scores(queries: Tensor, keys: Tensor, similarity: str,
                neg_sq: Tensor | None = None) -> Tensor | None:
    """Scores with the same argmax as ``similarity`` but cheaper (matmul, no sqrt), or None.

    :param neg_sq: ``-|m|^2`` as ``(..., 1, N)``, when the caller has it cached.
    """
    if similarity == "dot":
        return queries @ keys.transpose(-1, -2)
    if similarity == "cosine":
        return queries @ F.normalize(keys, dim=-1, eps=_EPS).transpose(-1, -2)
    if similarity in ("euclidean", "inv_euclidean"):
        # argmin |q - m|^2 = argmax (2 q.m - |m|^2): one matmul, |q|^2 drops out.
        if neg_sq is None:
            neg_sq = -keys.square().sum(-1).unsqueeze(-2)  # (..., 1, N)
        if queries.dim() == 2 and keys.dim() == 2:
            return torch.addmm(neg_sq, queries, keys.t(), alpha=2.0)
        return 2.0 * (queries @ keys.transpose(-1, -2)) + neg_sq
    return None


def _gather(values: Tensor, idx: Tensor) -> Tensor:
    """``values[..., idx, :]``: ``(..., N, Dv), (..., Q) -> (..., Q, Dv)``."""
    batch = torch.broadcast_shapes(values.shape[:-2], idx.shape[:-1])
    values = values.expand(*batch, *values.shape[-2:])
    idx = idx.expand(*batch, idx.shape[-1])
    return values.gather(-2, idx.unsqueeze(-1).expand(*idx.shape, values.shape[-1]))


def retrieve(queries: Tensor, keys: Tensor, values: Tensor | None = None, *,
             similarity: str | Callable = "dot", separation: str | Callable = "softmax",
             beta: float = 1.0, mask: Tensor | None = None, return_weights: bool = False,
             **sep_kwargs):
    """``z = values^T separation(beta, similarity(keys, q))`` for every query (UHN eq. 1).

    :param queries: ``(..., Q, D)``.
    :param keys: the stored patterns ``M``, ``(..., N, D)``; leading dims broadcast.
    :param values: ``(..., N, Dv)`` to project onto (heteroassociation); ``None``: the keys.
    :param similarity: a name in :data:`SIMILARITIES` or a callable ``(queries, keys) -> s``.
    :param separation: a name in :data:`SEPARATIONS` or a callable
        ``(s, beta, mask, **sep_kwargs) -> weights``.
    :param beta: inverse temperature of ``softmax``/``topk`` (> 0).
    :param mask: ``(..., Q, N)`` bool, True where query ``q`` may read memory ``n``; rows
        with no True give zero outputs (and zero weights), never NaN.
    :param return_weights: also return the separated weights ``(..., Q, N)``.
    :param sep_kwargs: the separation's own parameters (``n``, ``k``, ``normalize``,
        ``rectified``); ``inverse=True`` selects the inverse-distance similarity.
    :return: ``(..., Q, Dv)``, or ``(output, weights)``.
    """
    values = keys if values is None else values
    _check(queries, keys, values, beta, mask)
    sim_name = similarity
    if sep_kwargs.pop("inverse", False):
        sim_name = f"inv_{similarity}" if similarity in ("euclidean", "manhattan") else similarity
        if sim_name == similarity:
            get_similarity(similarity, inverse=True)  # raises the explanatory error
    sim_fn = get_similarity(sim_name)
    if separation == "max" and not return_weights and not sep_kwargs:
        # Fast path: argmax on rank-equivalent scores, then a gather instead of a matmul.
        scores = _max_scores(queries, keys, sim_name) if isinstance(sim_name, str) else None
        scores = sim_fn(queries, keys) if scores is None else scores
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        out = _gather(values, scores.argmax(-1))
        return out if mask is None else out * mask.any(-1, keepdim=True).to(out.dtype)
    sep_fn = get_separation(separation)
    weights = sep_fn(sim_fn(queries, keys), beta, mask, **sep_kwargs)  # (..., Q, N)
    out = weights @ values  # (..., Q, N) @ (..., N, Dv) -> (..., Q, Dv)
    return (out, weights) if return_weights else out


# ---------------------------------------------------------------------------------- models


class UniversalHopfield(torch.nn.Module):
    """One configured memory ``z = P^T sep(sim(M, q))`` with its patterns stored once.

    What :func:`retrieve` does, plus what a fixed store allows: the patterns' statistics are
    cached (``|m|^2`` for Euclidean max retrieval, unit keys for cosine) and queries run in
    chunks of ``chunk_size`` so a ``(Q, N)`` score matrix never exceeds memory.

    :param keys: ``(N, D)`` stored patterns; ``values``: ``(N, Dv)`` or ``None`` (the keys).
    :param similarity: see :data:`SIMILARITIES`; ``separation``: see :data:`SEPARATIONS`.
    :param beta: inverse temperature (> 0); ``sep_kwargs``: the separation's parameters.
    :param chunk_size: queries per chunk.
    """

    def __init__(self, keys: Tensor, values: Tensor | None = None, similarity: str = "euclidean",
                 separation: str = "max", beta: float = 1.0, chunk_size: int = 4096, **sep_kwargs):
        super().__init__()
        values = keys if values is None else values
        _check(keys[:1], keys, values, beta, None)
        get_similarity(similarity), get_separation(separation)  # fail early on unknown names
        self.similarity, self.separation, self.beta = similarity, separation, float(beta)
        self.chunk_size, self.sep_kwargs = int(chunk_size), sep_kwargs
        self.register_buffer("keys", keys)
        self.register_buffer("values", values)
        self.register_buffer("neg_sq", -keys.square().sum(-1).unsqueeze(0))  # (1, N)

    def forward(self, queries: Tensor) -> Tensor:
        """``(Q, D) -> (Q, Dv)``."""
        if queries.dim() != 2 or queries.shape[1] != self.keys.shape[1]:
            raise ValueError(f"queries must have shape (Q, {self.keys.shape[1]}), got "
                             f"{tuple(queries.shape)}")
        fast = self.separation == "max" and not self.sep_kwargs
        outs = []
        for q in queries.split(self.chunk_size):
            scores = _max_scores(q, self.keys, self.similarity, self.neg_sq) if fast else None
            if scores is None:
                outs.append(retrieve(q, self.keys, self.values, similarity=self.similarity,
                                     separation=self.separation, beta=self.beta, **self.sep_kwargs))
            else:
                outs.append(self.values[scores.argmax(-1)])
        return torch.cat(outs)


class ModernHopfield(torch.nn.Module):
    """The modern continuous Hopfield network (Ramsauer et al. 2020, eq. 2 and 3).

    Update ``xi <- X^T softmax(beta X xi)``, energy
    ``E = -lse(beta, X xi) + 1/2 xi^T xi + beta^-1 log N + 1/2 M^2`` (``M``: the largest
    pattern norm); every update lowers ``E`` or leaves it (CCCP). One step retrieves a pattern
    when the patterns are well separated; with ``separation="max"`` it is the nearest one.

    :param patterns: the stored patterns ``X (N, D)`` (a buffer; ``store`` replaces them).
    :param beta: inverse temperature (> 0).
    """

    def __init__(self, patterns: Tensor, beta: float = 1.0):
        super().__init__()
        if not beta > 0:
            raise ValueError(f"beta (inverse temperature) must be > 0, got {beta}")
        self.beta = float(beta)
        self.register_buffer("X", patterns.float())

    def store(self, patterns: Tensor) -> ModernHopfield:
        self.X = patterns.to(self.X)
        return self

    def energy(self, states: Tensor) -> Tensor:
        """``(..., D) -> (...)``."""
        lse = torch.logsumexp(self.beta * states @ self.X.t(), -1) / self.beta
        n, m = self.X.shape[0], self.X.norm(dim=-1).max()
        return -lse + 0.5 * states.square().sum(-1) + math.log(n) / self.beta + 0.5 * m**2

    def forward(self, queries: Tensor, steps: int = 1, return_energies: bool = False):
        """``steps`` updates of ``queries (..., Q, D)``; energies ``(steps + 1, ..., Q)`` if asked."""
        xi, energies = queries.to(self.X), [self.energy(queries.to(self.X))]
        for _ in range(steps):
            xi = retrieve(xi, self.X, similarity="dot", separation="softmax", beta=self.beta)
            energies.append(self.energy(xi))
        return (xi, torch.stack(energies)) if return_energies else xi


from memagent.memory.classical import ClassicalHopfield, SparseDistributedMemory, bipolar  # noqa: E402,F401
from memagent.memory.dam import DenseAssociativeMemory  # noqa: E402,F401  (re-exported)
