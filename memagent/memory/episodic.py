"""The episodic memory cores: Hopfield retrieval over the episode, and the NMN layer.

:class:`HopfieldCore` is an episodic associative memory read with the Universal Hopfield
Network recipe (Millidge et al. 2022, eq. 1): ``z = V^T sep(beta * sim(K, q))``, with dot
similarity and softmax separation (the modern continuous Hopfield update, Ramsauer et al.
2020). Every step writes its input; a read attends over the same episode's stored steps
within a window of ``capacity`` steps. A whole training sequence is one masked attention
(same episode, causal, within the window), not a loop.

What is stored is each step's embedding ``e_j = E x_j`` (B, capacity, E) (a linear map of the
input, ``embed_dim`` wide, so a one-hot gridworld observation of 337 categories costs what 32
numbers do; ``embed_dim=None`` stores ``x_j`` itself) plus the step's position in its
episode, never projected keys: the key and value projections are linear, so
``q . (W_k e_j) = (W_k^T q) . e_j`` and ``sum_j a_j W_v e_j = W_v sum_j a_j e_j``. The core
applies both projections at read time with the current weights, so a loss at step ``t``
reaches the read's parameters through a step ``j`` stored in an earlier rollout (delays
longer than one rollout are learnable; the embedding of such a step is what it was when it
was written), and a read over ``capacity`` steps costs ``O(capacity * E)``.
Each stored step carries two position features, ``log(1 + p) / log(1 + capacity)`` and
``1 / (1 + p)`` (``p`` = steps since the episode began), so a head can learn primacy; an
optional learned per-head bias ``-lam_h log(1 + d)`` on the scores (``d`` steps back,
``recency=True``) lets a head prefer the steps just before the current one, whatever ``p`` is.

:class:`NMNCore` wraps :class:`memagent.memory.nmn.NMNLayer` (Biggs & Nuttall, eq. 1, 2, 8,
11): a memory bank per hidden neuron, decayed by ``gamma`` when the neuron fires.
"""

from __future__ import annotations

import inspect
import math

import numpy as np
import torch
from torch import Tensor, nn

from memagent.memory.core import MemoryCore, State, register_core

N_POS = 2  # position features per stored step


def _attention_forward(q, k_s, k_v, bias, beta, rel=None, lam=None):
    """``softmax(beta q k_s^T + bias + lam_h rel) k_v`` for ``q (B, h*Q, D)``, keys
    ``(B, N, D)``, ``bias (B, Q, N)`` shared by the h heads and, if ``lam (h,)`` is given, a
    per-head multiple of ``rel ((B,) Q, N)``. For a sequence the products run as
    ``(k^T w^T)^T``: MKL's batched matmul is 2x faster with the narrow ``D`` as the output's
    leading dimension. For a step (``h*Q`` = 4) the plain products are 2x faster."""
    B, hQ, D = q.shape
    Q, N = bias.shape[1], k_s.shape[1]
    wide = hQ >= 64  # a sequence; a step's few queries are faster the plain way round
    scores = q @ (k_s.transpose(1, 2).contiguous() if wide else k_s.transpose(1, 2))  # (B, h*Q, N)
    if beta != 1.0:
        scores.mul_(beta)
    scores.view(B, hQ // Q, Q, N).add_(bias.unsqueeze(1))
    if lam is not None:  # per-head recency: + lam_h * rel (rel (Q, N) or (B, Q, N))
        scores.view(B, hQ // Q, Q, N).add_(lam.view(1, -1, 1, 1) * rel.view(-1, 1, Q, N))
    w = torch.softmax(scores, dim=-1)
    z = (k_v.transpose(1, 2) @ w.transpose(1, 2)).transpose(1, 2) if wide else w @ k_v  # (B, h*Q, D)
    return w, z


class _Attention(torch.autograd.Function):
    """:func:`_attention_forward` with a backward whose products are oriented like the
    forward's (MKL's fast path) and whose softmax gradient is torch's fused one; the weights
    it returns carry no gradient (they are only inspected). Timings: docs/policies.md."""

    @staticmethod
    def forward(ctx, q, k_s, k_v, bias, beta, rel=None, lam=None):
        w, z = _attention_forward(q, k_s, k_v, bias, beta, rel, lam)
        ctx.save_for_backward(q, k_s, k_v, w, rel)
        ctx.beta = beta
        ctx.set_materialize_grads(False)
        ctx.mark_non_differentiable(w)
        return w, z

    @staticmethod
    def backward(ctx, _grad_w, grad_z):
        if grad_z is None:
            return (None,) * len(ctx.needs_input_grad)
        q, k_s, k_v, w, rel = ctx.saved_tensors
        beta = ctx.beta
        grad_w = grad_z @ k_v.transpose(1, 2).contiguous()  # (B, h*Q, N)
        grad_s = torch.ops.aten._softmax_backward_data(grad_w, w, -1, w.dtype)
        grad_lam = None
        if len(ctx.needs_input_grad) > 6 and ctx.needs_input_grad[6]:  # d scores / d lam_h = rel
            B, hQ, N = grad_s.shape
            Q = rel.shape[-2]
            grad_lam = (grad_s.view(B, hQ // Q, Q, N) * rel.view(-1, 1, Q, N)).sum((0, 2, 3))
        if beta != 1.0:
            grad_s.mul_(beta)
        grad_q = grad_k_s = grad_k_v = None
        if ctx.needs_input_grad[0]:
            grad_q = (k_s.transpose(1, 2) @ grad_s.transpose(1, 2)).transpose(1, 2)
        if ctx.needs_input_grad[1]:
            grad_k_s = (q.transpose(1, 2) @ grad_s).transpose(1, 2)  # (B, N, D)
        if ctx.needs_input_grad[2]:
            grad_k_v = (grad_z.transpose(1, 2) @ w).transpose(1, 2)
        return (grad_q, grad_k_s, grad_k_v, None, None, None, grad_lam)[:len(ctx.needs_input_grad)]


def _attend(q: Tensor, k_s: Tensor, k_v: Tensor, bias: Tensor, beta: float,
            rel: Tensor | None = None, lam: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Weights ``(B, h*Q, N)`` and retrieval ``(B, h*Q, D)``; see :func:`_attention_forward`.
    The weights carry no gradient (they are only inspected)."""
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad
                                       for t in (q, k_s, k_v, lam)):
        return _Attention.apply(q, k_s, k_v, bias, beta, rel, lam)
    return _attention_forward(q, k_s, k_v, bias, beta, rel, lam)


@register_core("hopfield", width="output_dim")
class HopfieldCore(MemoryCore):
    """Episodic Hopfield memory: write every step, read by retrieval over the episode.

    State ``(mem, count)``: ``mem (B, capacity, E + 2)`` the embeddings of the last
    ``capacity`` inputs (newest last), each with the two position features of its step
    (written with the step: a stored step's position never changes), and ``count (B,)`` the
    steps seen in the current episode.

    :param input_dim: size of the input features ``F``.
    :param output_dim: size of the output ``H``.
    :param embed_dim: width ``E`` of the stored embedding ``E x`` of each input; ``None``
        stores the inputs themselves (``E = F``).
    :param heads: independent retrievals per step (each its own query).
    :param capacity: window of stored steps a read may reach (>= 1).
    :param beta: inverse temperature of the softmax separation (the default 16 is for cosine
        scores in ``[-1, 1]``; dot scores grow with the query and usually take ``beta = 1``).
    :param separation: the separation function of :func:`memagent.memory.hopfield.retrieve`
        (``"softmax"``, ``"max"``, ...).
    :param similarity: ``"dot"`` (``q . k``) or ``"cosine"`` (``q . k / (|q| |k|)``, so every
        score lies in ``[-beta, beta]``). With dot scores the query grows until the read is a
        hard argmax; a small update can then move the argmax to another step and change the
        policy at once, past PPO's clipping and ``target_kl`` (observed: greedy T-maze success
        from 100% to chance in one update). Cosine scores bound how sharp a read can get:
        ``beta`` sets it (``beta = 16`` gives a step scoring 0.75 above the rest about 99% of
        the weight among 1000 steps). The default: on TMaze-v0 (100k steps, seeds 0-4) both
        solved 5 of 5; cosine fell back from 100% on none, dot on one.
    :param recency: a learned per-head term ``-lam_h log(1 + d)`` in the scores, ``d`` the
        steps from the reading step back to the stored one (a relative position, as ALiBi's
        linear bias; the stored position features are absolute and the query has none, so
        without it no head can address "the step before this one"). A stored step ``d`` back
        then weighs ``(1 + d) ** -lam_h`` against the current step. ``True``: half the
        heads (rounded up) start without preference, the others at ``2, 1, 0.5, ...``
        (halving; 4 heads: 0, 0, 1, 2); a sequence
        gives each head's starting ``lam``; ``None``: ``True`` with softmax separation,
        ``False`` with the others (which take no bias); ``False`` (default): no term. A
        checkpoint saved without the term loads with ``lam = 0``, which reads as it did.
        Measured (docs/policies.md), 200k steps, 10 seeds: CartPoleNoVel-v1 (velocities
        hidden) return >= 450 on 9 of 10 with ``True`` (0 of 4 without); RecallSequence-v0
        solved on 9 of 10 with it, 8 of 10 without. Not the default: the T-maze with the cue
        5 steps back, 50k steps, solved on 18 of seeds 0-22 with it against 23 of 23 without.
    :param previous: pass the embedding of the episode's previous step to the output map
        beside the current one and the reads, ``y = tanh(W [e_t, e_{t-1}, z])`` (``e_{t-1} = 0``
        on an episode's first step; RWKV's token shift): a difference of consecutive steps
        (a velocity) needs no read. ``W``'s ``e_{t-1}`` columns start at 0 (the core starts as
        the one without them, from the same draws), and a checkpoint saved without them loads
        with them at 0, which reads as it did. The default (sixth session; docs/policies.md),
        200k steps, 10 seeds against ``False``: CartPoleNoVel-v1 return 500 on 10 of 10 (186-260
        on 4 of 4), KeyDoor-v0 solved on 4 of 10 and two doors in three on 5 more (one door,
        0.35, without), TMaze-v0 / TMaze-Random-v0 10 of 10 (both), RecallSequence-v0 7 of 10
        (8 of 10); the T-maze with the cue 5 steps back at 50k steps: 20 of seeds 0-22 (23).
    :param skip_repeats: a stored step whose input equals the one before it in the same
        episode is not read (a run of identical observations is read as its first step; a
        step always reads itself, and its position features still say where it is). A long
        corridor then leaves a handful of distinct steps between the cue and the junction
        instead of a thousand, so the read at the junction weighs the cue ~1/handful at
        initialisation, not ~1/1000. The flag rides in one more column of ``mem``
        (``E + 3``). Equality is exact: on inputs (the step path: the embeddings, computed
        by one op per step) and, for a sequence's first step, against the stored embedding of
        the step before (computed with the weights of the rollout, so after an update that
        step is read). Default ``False`` (an option; docs/policies.md).
    """

    state_batch_dim = 0

    def __init__(self, input_dim: int, output_dim: int = 64, heads: int = 4,
                 capacity: int = 1024, beta: float = 16.0, separation: str = "softmax",
                 similarity: str = "cosine", embed_dim: int | None = 32,
                 recency=False, previous: bool = True, skip_repeats: bool = False):
        super().__init__()
        if capacity < 1 or heads < 1 or output_dim < 1:
            raise ValueError(f"capacity, heads and output_dim must be >= 1, "
                             f"got {capacity}, {heads}, {output_dim}")
        if beta <= 0:
            raise ValueError(f"beta must be > 0, got {beta}")
        self.input_dim, self.output_dim = int(input_dim), int(output_dim)
        self.heads, self.capacity, self.beta, self.separation = heads, int(capacity), beta, separation
        if similarity not in ("dot", "cosine"):
            raise ValueError(f"similarity must be 'dot' or 'cosine', got {similarity!r}")
        if similarity == "cosine" and separation != "softmax":
            raise ValueError(f"similarity='cosine' needs separation='softmax', got {separation!r}; "
                         "pass similarity='dot' for other separations")
        self.similarity = similarity
        if recency is None:
            recency = separation == "softmax"
        if recency is not False and separation != "softmax":
            raise ValueError(f"recency needs separation='softmax', got {separation!r}; "
                             "pass recency=False")
        # per-head weight of -log(1 + steps back) in the scores: 0 at init (no preference)
        if recency is True:  # half the heads (rounded up) unbiased, the rest 2, 1, 0.5, ...
            biased = heads // 2
            init = torch.cat([torch.zeros(heads - biased),
                              2.0 * 2.0 ** torch.arange(1.0 - biased, 1.0)])
        elif recency is False:
            init = None
        else:
            init = torch.as_tensor(list(recency), dtype=torch.float32)
            if init.shape != (heads,):
                raise ValueError(f"recency: one initial weight per head ({heads}), got {recency!r}")
        self.recency = None if init is None else nn.Parameter(init)
        if embed_dim is not None and int(embed_dim) < 1:
            raise ValueError(f"embed_dim must be >= 1 or None (store the inputs), got {embed_dim}")
        self.embed = None if embed_dim is None else nn.Linear(self.input_dim, int(embed_dim))
        self.embed_dim = self.input_dim if embed_dim is None else int(embed_dim)
        self.key_dim = self.embed_dim + N_POS  # stored embedding plus position features
        if not isinstance(skip_repeats, bool):
            raise ValueError(f"skip_repeats must be True or False, got {skip_repeats!r}")
        self.skip_repeats = skip_repeats
        self.row_dim = self.key_dim + skip_repeats  # + the repeat flag
        # W_k^T W_q folded into one map from the current embedding to a query over stored ones.
        self.query = nn.Linear(self.embed_dim, heads * self.key_dim)
        nn.init.normal_(self.query.weight, std=0.1 / math.sqrt(self.embed_dim))
        nn.init.zeros_(self.query.bias)
        if not isinstance(previous, bool):
            raise ValueError(f"previous must be True or False, got {previous!r}")
        self.previous = previous
        # W_v folded into the output map: [e_t, (e_{t-1},) z_1..z_heads] -> y.
        self._out_in = self.embed_dim * (1 + previous) + heads * self.key_dim
        self.out = nn.Linear(self._out_in - self.embed_dim * previous, self.output_dim)
        if previous:  # e_{t-1}'s columns start at 0: at init the core reads as without them
            w, E = self.out.weight.detach(), self.embed_dim
            self.out.weight = nn.Parameter(torch.cat([w[:, :E], w.new_zeros(w.shape[0], E), w[:, E:]], 1))
            self.out.in_features = self._out_in
        self._last: tuple[Tensor, ...] | None = None
        self._aranges: dict = {}
        self._tables: dict = {}

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        if self.recency is not None and prefix + "recency" not in state_dict:
            # saved before the term existed: lam = 0 scores exactly as that core did
            state_dict[prefix + "recency"] = torch.zeros_like(self.recency)
        w = state_dict.get(prefix + "out.weight")
        if self.previous and w is not None and w.shape[1] == self._out_in - self.embed_dim:
            # saved without e_{t-1}: zero columns for it read exactly as that core did
            E = self.embed_dim
            state_dict[prefix + "out.weight"] = torch.cat([w[:, :E], w.new_zeros(w.shape[0], E), w[:, E:]], 1)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def initial_state(self, batch_size: int, device=None) -> State:
        return (torch.zeros(batch_size, self.capacity, self.row_dim, device=device),
                torch.zeros(batch_size, device=device))

    def _positions(self, p: Tensor) -> Tensor:
        p = p.clamp(min=0).unsqueeze(-1)
        return torch.cat([torch.log1p(p) / math.log1p(self.capacity), 1.0 / (1.0 + p)], -1)

    def _arange(self, n: int, device) -> Tensor:
        """``arange(n)`` (float), cached: the step path asks for one every call."""
        cached = self._aranges.get((n, device))
        if cached is None:
            cached = self._aranges[(n, device)] = torch.arange(n, device=device, dtype=torch.float32)
        return cached

    def _read(self, q: Tensor, keys: Tensor, mask: Tensor,
              back: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Weights and retrieval of ``q (B, h, Q, D)`` over ``keys (B, N, D)``, ``mask (B, Q, N)``;
        ``back (Q, N)``: the steps from each query back to each key, for the recency term
        (``None``: no term).

        The softmax case computes :func:`memagent.memory.hopfield.retrieve`'s maths (equal to
        float rounding), minus what cannot matter here: every query may read at least its
        own step, so no row is fully masked and multiplying the weights by the mask changes
        nothing. The heads share the keys, so they fold into the query axis (one
        ``(B, h*Q, D) @ (B, D, N)`` product), and the mask is added as a ``(B, 1, Q, N)``
        bias of 0 / -inf computed once for all heads: a boolean ``masked_fill`` broadcast over
        the heads, and a matmul broadcast over a singleton head axis, cost 4-8x more on CPU.
        The products and their gradients run in :class:`_Attention`.
        """
        B, h, Q, D = q.shape
        if self.separation != "softmax":
            from memagent.memory.hopfield import retrieve

            z, w = retrieve(q, keys.unsqueeze(1), separation=self.separation, beta=self.beta,
                            mask=mask.unsqueeze(1), return_weights=True)
            return w, z
        unit = keys
        if self.similarity == "cosine":  # unit queries and keys for the scores; values stay keys
            q = q / q.norm(dim=-1, keepdim=True).clamp(min=1e-6)
            unit = keys / keys.norm(dim=-1, keepdim=True).clamp(min=1e-6)
        bias = torch.where(mask, 0.0, float("-inf")).to(q.dtype)  # (B, Q, N)
        rel = None
        if self.recency is not None and back is not None:  # back: steps query -> key, (Q, N)
            rel = -torch.log1p(back.clamp(min=0).to(q.dtype))
        w, z = _attend(q.reshape(B, h * Q, D), unit, keys, bias, float(self.beta), rel,
                       None if rel is None else self.recency)
        return w.view(B, h, Q, -1), z.view(B, h, Q, D)

    def forward(self, x: Tensor, state: State, episode_starts: Tensor) -> tuple[Tensor, State]:
        self._check_input(x, episode_starts)
        raw = x
        if self.embed is not None:
            x = self.embed(x)  # (T, B, F) -> (T, B, E)
        if x.shape[0] == 1:
            return self._step(x, state, episode_starts)
        return self._sequence(x, state, episode_starts, raw)

    def _position_table(self, n: int, like: Tensor) -> Tensor:
        """Position features of positions ``0 .. >= n-1`` (``(P, N_POS)``), cached and grown by
        doubling: the step path looks its positions up instead of computing them."""
        key = (like.device, like.dtype)
        table = self._tables.get(key)
        if table is None or table.shape[0] < n:
            size = max(n, 2 * (0 if table is None else table.shape[0]), self.capacity + 1)
            table = self._positions(torch.arange(size, device=like.device, dtype=like.dtype))
            self._tables[key] = table
        return table

    def _step(self, x: Tensor, state: State, episode_starts: Tensor) -> tuple[Tensor, State]:
        """T = 1 (rollout collection), the same maths as :meth:`_sequence` with fewer ops.

        The new step is always in its own episode and window, so the read attends it plus the
        stored steps of the same episode inside the window: the last ``min(p, capacity - 1)``
        of them, where ``p`` (0 after a start) is the new step's position in its episode.
        The stored rows already are keys (input and position features), so after appending
        the new row the keys are a view of the memory's last ``n_old + 1`` rows (``n_old``
        for the longest current episode): ~20 small tensor ops per step.
        """
        x0 = x[0]  # (B, E)
        B = x0.shape[0]
        C = self.capacity
        mem, count = state  # (B, C, D), (B,)
        p_new = count.to(x0.dtype).masked_fill(episode_starts[0] > 0, 0.0)  # (B,) new step's position
        # the previous step of the episode is the memory's newest row (0 on a first step)
        head = [x0] if not self.previous else [x0, mem[:, -1, :self.embed_dim] * (p_new > 0).to(x0.dtype)[:, None]]
        p_max = int(p_new.max()) if B else 0
        n_old = min(C - 1, p_max)
        new = torch.cat([x0, self._position_table(p_max + 1, x0)[p_new.long()]], -1)  # (B, D)
        if self.skip_repeats:  # flag: the same input as the episode's previous step
            same = (x0 == mem[:, -1, :self.embed_dim]).all(-1) & (p_new > 0)
            new = torch.cat([new, same.to(x0.dtype)[:, None]], -1)
        mem = torch.cat([mem[:, 1:], new[:, None]], 1)  # drop the oldest, append the newest
        keys = mem[:, C - 1 - n_old:]  # (B, N, D): old ..., new
        mem_p = (p_new[:, None] - n_old) + self._arange(n_old + 1, x0.device)  # (B, N)
        mask = mem_p >= 0
        if self.skip_repeats:
            mask = mask & (keys[..., -1] == 0)
            mask[:, -1] = True  # a step always reads itself
            keys = keys[..., :self.key_dim]
        q = self.query(x0).view(B, self.heads, 1, self.key_dim)  # (B, h, 1, D)
        back = (n_old - self._arange(n_old + 1, x0.device))[None]  # (1, N): old ..., new = 0
        w, z = self._read(q, keys, mask[:, None], back)  # (B, h, 1, N), (B, h, 1, D)
        w, z = w[:, :, 0], z[:, :, 0]
        y = torch.tanh(self.out(torch.cat([*head, z.reshape(B, -1)], -1)))  # (B, H)
        self._last = (w.detach(), mem_p.detach())
        return y.unsqueeze(0), (mem, (p_new + 1).to(count.dtype))

    def _sequence(self, x: Tensor, state: State, episode_starts: Tensor,
                  raw: Tensor | None = None) -> tuple[Tensor, State]:
        """T >= 1: one masked attention over the stored steps and the sequence."""
        T, B, F = x.shape
        C, dev = self.capacity, x.device
        mem, count = state  # (B, C, D), (B,)
        # read only the stored steps some env can still reach (short episodes: a few)
        n_old = int(min(C, max(int(count.max()) if B else 0, 0)))
        starts = episode_starts.to(torch.bool)
        t = torch.arange(T, device=dev)
        # episode position of every new step: since its last start, else continuing `count`
        last_start = torch.cummax(torch.where(starts, t[:, None], -1), 0).values  # (T, B)
        p_new = torch.where(last_start >= 0, t[:, None] - last_start,
                            count[None].long() + t[:, None])  # (T, B)
        seg = torch.cumsum(starts.long(), 0)  # (T, B) episode index inside the sequence
        p_old = count[:, None].long() - n_old + torch.arange(n_old, device=dev)  # (B, n_old), < 0: empty
        new = torch.cat([x.transpose(0, 1), self._positions(p_new.t().to(x.dtype))], -1)  # (B, T, D)
        if self.skip_repeats:  # flag: the same input as the episode's previous step
            raw = x if raw is None else raw
            first = (x[0] == mem[:, -1, :self.embed_dim]).all(-1)  # (B,) against the stored row
            same = torch.cat([first[None], (raw[1:] == raw[:-1]).all(-1)], 0) & (p_new > 0)  # (T, B)
            new = torch.cat([new, same.t().to(x.dtype)[..., None]], -1)
        keys = torch.cat([mem[:, C - n_old:], new], 1)  # (B, N, D), N = n_old + T
        mem_p = torch.cat([p_old, p_new.t()], 1)  # (B, N)
        # mask (B, T, N): same episode, not in the future, within the window
        time_k = torch.cat([torch.arange(-n_old, 0, device=dev), t])  # (N,)
        dist = t[:, None] - time_k[None]  # (T, N)
        window = (dist >= 0) & (dist < C)
        seg_k = torch.cat([seg.new_zeros(B, n_old), seg.t()], 1)  # (B, N)
        mask = (window[None] & (seg.t()[:, :, None] == seg_k[:, None, :])
                & (mem_p >= 0)[:, None, :])  # (B, T, N)
        if self.skip_repeats:  # repeats are not read, but a step always reads itself
            mask = mask & ((keys[..., -1] == 0)[:, None, :] | (dist == 0)[None])
            keys = keys[..., :self.key_dim]
        q = self.query(x).view(T, B, self.heads, self.key_dim).permute(1, 2, 0, 3)  # (B, h, T, D)
        w, z = self._read(q, keys, mask, dist)  # (B, h, T, N), (B, h, T, D)
        self._last = (w[:, :, -1].detach(), mem_p.detach())
        z = z.permute(2, 0, 1, 3).reshape(T, B, self.heads * self.key_dim)  # (B, h, T, D) -> (T, B, h*D)
        head = [x]
        if self.previous:  # e_{t-1}: the stored newest row, then the sequence shifted by one
            prev = torch.cat([mem[None, :, -1, :self.embed_dim], x[:-1]], 0)  # (T, B, E)
            head.append(prev * (p_new > 0).to(x.dtype)[..., None])
        y = torch.tanh(self.out(torch.cat([*head, z], -1)))  # (T, B, H)
        mem = torch.cat([mem, new], 1)[:, -C:] if T < C else new[:, -C:]
        return y, (mem, (p_new[-1] + 1).to(count.dtype))

    def inspect(self) -> dict[str, np.ndarray]:
        """``attention (B, heads, N)``: the weights of the last step's read over the stored
        steps (oldest first); ``positions (B, N)``: their step in the episode (< 0: empty)."""
        if self._last is None:
            return {}
        w, p = self._last
        return {"attention": w.cpu().numpy(), "positions": p.long().cpu().numpy()}


@register_core("nmn", width="hidden_size")
class NMNCore(MemoryCore):
    """The neural memory network layer as a policy core (a memory bank per hidden neuron).

    State ``(M,)``: the memory banks ``(B, hidden_size, state_dim)`` of
    :class:`memagent.memory.nmn.NMNLayer`, computed over a sequence with its parallel scan.

    :param input_dim: size of the input features ``F``.
    :param hidden_size: neurons (each with its memory bank); the output size is the layer's
        ``output_dim = hidden_size * (1 + mem_dim)``.
    :param write_on_fire: only a neuron that fires writes (see ``NMNLayer``): a neuron that
        stays silent keeps what it stored, so a cue written at an episode's start survives the
        delay; with eq. 11's write-every-step, a silent neuron's bank gains one code per step
        and the cue's becomes one of hundreds on a long corridor.
    :param addressed: eq. 12's binary-to-linear write (``NMNLayer(addressed=True)``): each
        neuron of a firing window writes its own pair of slots, with the rounding's gradient
        passed straight through. ``None`` (default): addressed for ``write="neighbours"``, not
        for ``write="external"`` (already linear). With eq. 11's one-hot code instead
        (``False``), a neuron crossing its threshold at the cue step replaces a whole code and
        the readout learnt for it then chooses at chance: on TMaze-v0 5 of 10 seeds solved and
        4 fell back, against 9 of 10 and none addressed (18 of 20 and 1 over seeds 0-19;
        docs/policies.md).
    :param kwargs: the :class:`memagent.memory.nmn.NMNLayer` parameters (``tau``, ``gamma``,
        ``write``, ...). Keep ``gamma_eval`` unset under PPO: rollouts run the
        policy in eval mode and training in train mode, and both must decay alike.
    """

    state_batch_dim = 0

    def __init__(self, input_dim: int, hidden_size: int = 32, write_on_fire: bool = True,
                 addressed: bool | None = None, **kwargs):
        super().__init__()
        from memagent.memory.nmn import NMNLayer

        if addressed is None:
            addressed = kwargs.get("write", "neighbours") == "neighbours"
        self.input_dim = int(input_dim)
        self.layer = NMNLayer(self.input_dim, hidden_size, write_on_fire=write_on_fire,
                              addressed=addressed, **kwargs)
        self.output_dim = int(self.layer.output_dim)
        self._last: Tensor | None = None

    @classmethod
    def parameter_names(cls) -> tuple[str, ...]:
        """``hidden_size`` and the :class:`memagent.memory.nmn.NMNLayer` parameters."""
        from memagent.memory.nmn import NMNLayer

        layer = list(inspect.signature(NMNLayer.__init__).parameters)[3:]  # self, in, out features
        return ("hidden_size", *layer)

    def initial_state(self, batch_size: int, device=None) -> State:
        return (self.layer.initial_state(batch_size, device),)

    def forward(self, x: Tensor, state: State, episode_starts: Tensor) -> tuple[Tensor, State]:
        self._check_input(x, episode_starts)
        y, banks = self.layer(x, state[0], episode_starts)
        self._last = banks.detach()
        return y, (banks,)

    def inspect(self) -> dict[str, np.ndarray]:
        """``bank (B, hidden_size, mem_dim)``: each neuron's memory after the last forward."""
        return {} if self._last is None else {"bank": self.layer.read(self._last).cpu().numpy()}
