"""Neural Memory Networks: a memory bank per hidden neuron (Biggs & Nuttall).

:class:`NMNLayer` implements, for one hidden layer of ``H`` neurons:

- eq. 1, the standard neurons: ``x = sigmoid(W u + b)`` for the layer input ``u``;
- eq. 2, the augmented output ``[x_1, x_1 M_1, ..., x_H, x_H M_H]``: each neuron's output is a
  linear switch that reads its own memory bank ``M_j`` out into the next layer. The read uses
  the memory as it was *before* this step's write (the paper's order: forward propagation,
  then memory storage);
- eq. 8, gradients reach ``x_j`` along both paths (the output itself and the switch ``x_j M_j``);
  autograd gives exactly the paper's sum over memory nodes;
- eq. 11, the memory update ``M_j <- gamma^[x_j] M_j + g(...)`` where ``[x_j]`` is the rounded
  output (the neuron *fires* when ``x_j > 0.5``: the memory is then scaled by ``gamma``, else
  kept), with the write function ``g`` selectable:

  * ``write="neighbours"``: the rounded outputs of neuron ``j`` and its ``tau`` nearest
    neighbours (indices ``j - tau//2 ... j + tau - tau//2``, wrapping round the layer) are
    mapped to a one-hot code in ``2**(tau + 1)`` dimensions (orthogonal memories). The code
    index reads the window as a binary number, first neighbour most significant. Written
    every step, as eq. 11 states;
  * ``write="external"``: the layer input ``u`` is recorded when the neuron fires
    (``g = [x_j] u``; the bank has ``in_features`` dimensions);

- the addressed variant of the paper's future work (eq. 12, ``addressed=True``): eq. 12's
  differentiable selection ``prod_i (x_i or 1 - x_i)`` kept factor by factor, so each window
  neuron ``i`` writes ``(1 - x_i, x_i)`` into its own pair of slots: a binary-to-linear mapping
  whose bank has ``2 (tau + 1)`` slots (linear in ``tau``, not ``2**(tau + 1)``). The outputs
  are rounded as in eq. 11 and the rounding passes gradients straight through, so the write
  path is differentiable: gradients reach earlier inputs through the memory.

The decay schedule: ``gamma`` while training (fast decay gives plasticity), ``gamma_eval`` in
``eval()`` mode (``1.0`` keeps memories indefinitely) and an asymptote ``floor``: a memory
written ``s`` steps ago after ``n`` firings has weight ``floor + (1 - floor) gamma**n``, so old
memories are kept at magnitude ``floor`` (the state then holds the decaying and the permanent
part side by side: ``state_dim = 2 * mem_dim``).

The update is a linear recurrence ``M_t = a_t M_{t-1} + b_t`` (``a_t = 0`` where an episode
starts), so a whole sequence runs at once with a log-depth parallel scan
(:func:`linear_scan`; on a CPU a loop of fused in-place steps, with a hand-written
backward, is faster and is used instead); :meth:`NMNLayer.step` runs one step with
the same results.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

WRITES = ("neighbours", "external")


def _memory(state) -> Tensor:
    """The bank tensor ``(B, H, state_dim)``, also from a 1-tuple ``(M,)`` (a core's state)."""
    return state if isinstance(state, Tensor) else state[0]


SCANS = ("auto", "parallel", "sequential")


def _scan_loop(a: Tensor, b: Tensor, h0: Tensor | None, reverse: bool = False) -> Tensor:
    """``h_t = a_t h_{t-1} + b_t`` as ``T`` fused in-place steps (no autograd); ``reverse``
    runs from ``T - 1`` down to 0 (``h_t = a_t h_{t+1} + b_t``). ``a`` broadcasts against ``b``."""
    with torch.no_grad():
        out = torch.empty(torch.broadcast_shapes(b.shape, a.shape), dtype=b.dtype,
                          device=b.device)
        h = torch.zeros_like(out[0]) if h0 is None else h0.expand_as(out[0])
        steps = zip(a.unbind(0), b.unbind(0), out.unbind(0), strict=True)
        for a_t, b_t, out_t in (reversed(list(steps)) if reverse else steps):
            h = torch.addcmul(b_t, a_t, h, out=out_t)
    return out


def _reduce_to(grad: Tensor, shape: torch.Size) -> Tensor:
    """Sum ``grad`` over the dims it was broadcast along to reach ``shape``'s."""
    extra = grad.dim() - len(shape)
    if extra:
        grad = grad.sum(dim=tuple(range(extra)))
    dims = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    return grad.sum(dim=dims, keepdim=True) if dims else grad


class _SequentialScan(torch.autograd.Function):
    """:func:`linear_scan` by loops, forward and backward, with the adjoint recurrence.

    The gradient ``G_t`` of the states gives the adjoint ``L_t = G_t + a_{t+1} L_{t+1}``: one
    reverse scan; then ``db_t = L_t``, ``da_t = L_t h_{t-1}`` (summed over ``a``'s broadcast
    dims) and ``dh_0 = a_0 L_0``. No graph is kept over the ``T`` steps: the forward saves
    ``a``, ``h_0`` and the states, and the backward is ``T`` fused steps and four whole-
    sequence products, where autograd through the parallel scan replays its ``log2 T`` levels
    of concatenations.
    """

    @staticmethod
    def forward(ctx, a, b, h0):
        out = _scan_loop(a, b, h0)
        ctx.save_for_backward(a, h0, out)
        ctx.b_shape = b.shape
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        a, h0, out = ctx.saved_tensors
        # L_t = G_t + a_{t+1} L_{t+1}: a reverse scan whose decays are a shifted by one
        shifted = torch.cat([a[1:], torch.zeros_like(a[:1])], dim=0)
        adj = _scan_loop(shifted, grad_out, None, reverse=True)
        grad_a = grad_b = grad_h0 = None
        if ctx.needs_input_grad[0]:
            before = torch.empty_like(out)  # h_{t-1}
            before[1:] = out[:-1]
            if h0 is None:
                before[0] = 0.0
            else:
                before[0] = h0
            grad_a = _reduce_to(adj * before, a.shape)
        if ctx.needs_input_grad[1]:
            grad_b = _reduce_to(adj, ctx.b_shape)
        if h0 is not None and ctx.needs_input_grad[2]:
            grad_h0 = _reduce_to(a[0] * adj[0], h0.shape)
        return grad_a, grad_b, grad_h0


def linear_scan(a: Tensor, b: Tensor, h0: Tensor | None = None, method: str = "auto") -> Tensor:
    """All states of ``h_t = a_t * h_{t-1} + b_t`` over dim 0, differentiable in ``a``, ``b``, ``h0``.

    :param a: decay factors ``(T, ...)``, broadcastable against ``b``.
    :param b: inputs ``(T, ...)``.
    :param h0: the state before step 0 (``b``'s shape without T); zeros if ``None``.
    :param method: ``"parallel"``: a Hillis-Steele scan, ``log2(T)`` levels of whole-sequence
        products and sums (no division, no cumprod ratios, so decays that underflow to zero
        stay exact), differentiated by autograd: few, large kernels, the GPU's choice.
        ``"sequential"``: ``T`` fused in-place steps ``h = a_t h + b_t``, and when a gradient
        is needed a hand-written backward (the adjoint recurrence, ``T`` reverse steps): on a
        CPU the scan's ``T log T`` work and its copies cost more than ``T`` tiny kernels.
        ``"auto"`` (default): sequential on a CPU, parallel on other devices. The two agree to
        float rounding (~1e-7), values and gradients.
    :return: ``(T, ...)``, the state after each step.
    """
    if method not in SCANS:
        raise ValueError(f"method must be one of {SCANS}, got {method!r}")
    a = a.expand(b.shape[0], *a.shape[1:])  # keep a's broadcast (smaller) shape
    if method == "auto":
        method = "sequential" if b.device.type == "cpu" else "parallel"
    if method == "sequential":
        grad = torch.is_grad_enabled() and any(
            t is not None and t.requires_grad for t in (a, b, h0))
        if not grad:
            return _scan_loop(a, b, h0)
        if h0 is not None:
            h0 = h0.expand(b.shape[1:]) if h0.dim() < b.dim() - 1 else h0
        return _SequentialScan.apply(a, b, h0)
    if h0 is not None:
        b = torch.cat([(a[:1] * h0.unsqueeze(0) + b[:1]), b[1:]], dim=0)
    d = 1
    while d < b.shape[0]:
        # (a1, b1) then (a2, b2) composes to (a1 a2, a2 b1 + b2)
        b = torch.cat([b[:d], a[d:] * b[:-d] + b[d:]], dim=0)
        if 2 * d < b.shape[0]:  # the last level's decays are never read
            a = torch.cat([a[:d], a[d:] * a[:-d]], dim=0)
        d *= 2
    return b


class _Augment(torch.autograd.Function):
    """Eq. 2 over a sequence, ``y_t = [x_t, x_t keep_t M_{t-1}]`` per neuron, written into one
    ``(T, B, H, 1 + mem_dim)`` output.

    ``x (T, B, H)``, ``keep (T, B, 1)`` (0 where an episode starts), ``state (B, H, m)`` the
    memory before step 0 and ``states (T, B, H, m)`` after each step. One pass over the
    output instead of three (building ``[1, M]``, then the product), and the backward
    reads the memories where they are; the memories get their gradient
    ``x_t keep_t dy_t`` when they need one (the addressed write).
    """

    @staticmethod
    def forward(ctx, x, keep, state, states):
        xk = x * keep  # (T, B, H): x_t where the memory is kept, 0 at a start
        y = x.new_empty(*x.shape, 1 + states.shape[-1])
        y[..., 0] = x
        torch.mul(xk[0].unsqueeze(-1), state, out=y[0, ..., 1:])
        torch.mul(xk[1:].unsqueeze(-1), states[:-1], out=y[1:, ..., 1:])
        ctx.save_for_backward(keep, state, states, xk)
        return y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_y):
        keep, state, states, xk = ctx.saved_tensors
        read = grad_y.new_empty(grad_y.shape[:-1])  # (T, B, H): sum_k dy_k M_{t-1, k}
        torch.sum(grad_y[0, ..., 1:] * state, -1, out=read[0])
        torch.sum(grad_y[1:, ..., 1:] * states[:-1], -1, out=read[1:])
        grad_state = grad_states = None
        if ctx.needs_input_grad[2]:
            grad_state = grad_y[0, ..., 1:] * xk[0].unsqueeze(-1)
        if ctx.needs_input_grad[3]:
            grad_states = torch.zeros_like(states)  # M_T is not read by this sequence
            torch.mul(grad_y[1:, ..., 1:], xk[1:].unsqueeze(-1), out=grad_states[:-1])
        return torch.addcmul(grad_y[..., 0], read, keep), None, grad_state, grad_states


def _round(x: Tensor, straight_through: bool) -> Tensor:
    """``[x]``: 1 where the neuron fires (``x > 0.5``); the gradient of ``x`` if straight-through."""
    r = (x > 0.5).to(x.dtype)
    return r + x - x.detach() if straight_through else r


class NMNLayer(nn.Module):
    """One NMN hidden layer: eq. 1 neurons, each with a memory bank (eq. 2, 11; eq. 12 if addressed).

    :param in_features: size ``F`` of the layer input.
    :param out_features: number ``H`` of standard neurons.
    :param tau: nearest neighbours written with each neuron (``0 <= tau < out_features``);
        ignored by ``write="external"``.
    :param gamma: decay on firing while training, in (0, 1].
    :param write: ``"neighbours"`` (eq. 11's orthogonal code) or ``"external"`` (the input).
    :param addressed: eq. 12's differentiable binary-to-linear addressing (``"neighbours"`` only).
    :param gamma_eval: decay in ``eval()`` mode, in (0, 1]; ``None`` uses ``gamma``.
    :param floor: asymptotic magnitude of old memories, in [0, 1); 0 lets them decay away.
    :param straight_through: pass gradients through the rounding ``[x_j]`` (not in the paper).
    :param bias: whether eq. 1 has the bias ``b``.
    :param write_on_fire: a neuron writes its new memory only when it fires, as §3 describes
        ("when a node fires the current composite vector ... is scaled ... and then the new
        memory is added"; ``write="external"`` always does), so a bank holds at most
        ``1 / (1 - gamma)`` codes and a silent neuron keeps what it holds. ``False``: every
        neuron writes every step (eq. 11 read literally), and a neuron that never fires adds
        one code per step without decay.

    Shapes: ``x (T, B, F) -> y (T, B, output_dim)``; the state is the memory banks
    ``M (B, H, state_dim)`` (a 1-tuple ``(M,)``, a policy core's state, is accepted too).
    """

    def __init__(self, in_features: int, out_features: int, tau: int = 2, gamma: float = 0.9,
                 write: str = "neighbours", addressed: bool = False,
                 gamma_eval: float | None = None, floor: float = 0.0,
                 straight_through: bool = False, bias: bool = True, write_on_fire: bool = False):
        super().__init__()
        if in_features < 1 or out_features < 1:
            raise ValueError(f"in_features and out_features must be >= 1, got {in_features}, "
                             f"{out_features}")
        if write not in WRITES:
            raise ValueError(f"write must be one of {WRITES}, got {write!r}")
        if write == "neighbours" and not 0 <= tau < out_features:
            raise ValueError(f"tau must be in [0, out_features - 1] = [0, {out_features - 1}] "
                             f"(a neuron has at most out_features - 1 neighbours), got {tau}")
        if addressed and write != "neighbours":
            raise ValueError("addressed=True addresses by the neighbours' outputs: use "
                             "write='neighbours' (external writing is already linear in size)")
        for name, value in (("gamma", gamma), ("gamma_eval", gamma_eval)):
            if value is not None and not 0.0 < value <= 1.0:
                raise ValueError(f"{name} must be in (0, 1], got {value}")
        if not 0.0 <= floor < 1.0:
            raise ValueError(f"floor must be in [0, 1), got {floor}")
        self.in_features, self.out_features, self.tau = in_features, out_features, tau
        self.gamma, self.gamma_eval, self.floor = float(gamma), gamma_eval, float(floor)
        self.write, self.addressed, self.straight_through = write, addressed, straight_through
        self.write_on_fire = bool(write_on_fire)
        self.linear = nn.Linear(in_features, out_features, bias=bias)
        if write == "external":
            self.mem_dim = in_features
        else:
            self.mem_dim = 2 * (tau + 1) if addressed else 2 ** (tau + 1)
        self.state_dim = 2 * self.mem_dim if floor > 0 else self.mem_dim
        self.output_dim = out_features * (1 + self.mem_dim)
        offsets = torch.arange(-(tau // 2), tau - tau // 2 + 1)
        # window[j, i] = (j + offsets[i]) mod H: neuron j and its tau neighbours
        self.register_buffer("window", (torch.arange(out_features)[:, None] + offsets) % out_features,
                             persistent=False)
        codes = torch.arange(2 ** (tau + 1) if write == "neighbours" else 1)
        # bits[k, i]: bit i of code k, window position 0 the most significant: (2^(tau+1), tau+1)
        self.register_buffer("bits", (codes[:, None] >> torch.arange(tau, -1, -1)) & 1 == 1,
                             persistent=False)
        # code_weights[i, j] = 2^(tau - p) where neuron i sits at window position p of neuron j:
        # rounded outputs (H,) @ code_weights -> every neuron's window read as a binary number,
        # in one matmul (exact: small integers)
        weights = torch.zeros(out_features, out_features)
        if write == "neighbours":
            for p in range(tau + 1):
                weights[self.window[:, p], torch.arange(out_features)] += 2.0 ** (tau - p)
        self.register_buffer("code_weights", weights, persistent=False)

    # ---- pieces -------------------------------------------------------------------------
    def current_gamma(self) -> float:
        """The decay in use: ``gamma`` while training, ``gamma_eval`` in eval mode."""
        return self.gamma if self.training or self.gamma_eval is None else float(self.gamma_eval)

    def initial_state(self, batch_size: int, device=None) -> Tensor:
        """Empty memory banks ``(B, H, state_dim)``."""
        return torch.zeros(batch_size, self.out_features, self.state_dim,
                           device=device if device is not None else self.linear.weight.device,
                           dtype=self.linear.weight.dtype)

    def _write(self, u: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
        """Decay factor and new memory for neuron outputs ``x (..., H)`` and inputs ``u (..., F)``.

        :return: ``a (..., H, 1)``, ``g (..., H, mem_dim)``.
        """
        r = _round(x, self.straight_through or self.addressed)  # [x_j]: (..., H)
        a = 1.0 - (1.0 - self.current_gamma()) * r  # gamma^[x] for [x] in {0, 1}
        if self.write == "external":
            g = r.unsqueeze(-1) * u.unsqueeze(-2)  # (..., H, 1) * (..., 1, F) -> (..., H, F)
        elif self.addressed or self.straight_through:
            w = r[..., self.window]  # (..., H) -> (..., H, tau + 1)
            if self.addressed:  # eq. 12's factors (1 - x_i, x_i), side by side
                g = torch.stack([1.0 - w, w], dim=-1).flatten(-2)  # (..., H, 2 (tau + 1))
            else:  # the one-hot as eq. 12's product, so gradients pass
                g = torch.where(self.bits, w.unsqueeze(-2), 1.0 - w.unsqueeze(-2)).prod(-1)
        else:  # one-hot of the window read as a binary number: (..., H) -> (..., H, 2^(tau+1))
            code = (r @ self.code_weights.to(r.dtype)).long().unsqueeze(-1)  # (..., H, 1)
            g = torch.zeros(*r.shape, self.mem_dim, dtype=x.dtype, device=x.device)
            g.scatter_(-1, code, r.unsqueeze(-1) if self.write_on_fire else 1.0)
            return a.unsqueeze(-1), g
        if self.write_on_fire and self.write == "neighbours":
            g = g * r.unsqueeze(-1)  # only a neuron that fires writes (§3's text)
        return a.unsqueeze(-1), g

    def read(self, state) -> Tensor:
        """The memory contents ``M (..., H, mem_dim)`` of a state (decaying + floor parts)."""
        state = _memory(state)
        if self.floor > 0:
            decaying, kept = state.split(self.mem_dim, dim=-1)
            return (1.0 - self.floor) * decaying + self.floor * kept
        return state

    def _augment(self, x: Tensor, memory: Tensor) -> Tensor:
        """Eq. 2: ``(..., H)`` and ``(..., H, mem_dim)`` -> ``(..., H (1 + mem_dim))``."""
        return torch.cat([x.unsqueeze(-1), x.unsqueeze(-1) * memory], dim=-1).flatten(-2)

    def _decays(self, a: Tensor) -> Tensor:
        """Per-part decay: the floor part is never decayed. ``(..., H, 1) -> (..., H, 1 or S)``."""
        if self.floor > 0:
            ones = torch.ones_like(a).expand(*a.shape[:-1], self.mem_dim)
            return torch.cat([a.expand_as(ones), ones], dim=-1)
        return a

    def _inputs(self, g: Tensor) -> Tensor:
        return torch.cat([g, g], dim=-1) if self.floor > 0 else g

    # ---- running ------------------------------------------------------------------------
    def forward(self, u: Tensor, state: Tensor | None = None,
                episode_starts: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Run a whole sequence with a parallel scan.

        :param u: inputs ``(T, B, F)``.
        :param state: the memory banks ``(B, H, state_dim)`` before step 0; empty if ``None``.
        :param episode_starts: ``(T, B)``, 1 where the memory is emptied before step t.
        :return: ``y (T, B, output_dim)`` and the state after step T.
        """
        if u.dim() != 3 or u.shape[-1] != self.in_features or u.shape[0] < 1:
            raise ValueError(f"u must have shape (T >= 1, B, {self.in_features}), "
                             f"got {tuple(u.shape)}")
        T, B = u.shape[:2]
        state = _memory(self.initial_state(B, u.device) if state is None else state)
        x = torch.sigmoid(self.linear(u))  # eq. 1: (T, B, F) -> (T, B, H)
        a, g = self._write(u, x)  # (T, B, H, 1), (T, B, H, mem_dim)
        a, g = self._decays(a), self._inputs(g)
        if episode_starts is not None:
            if episode_starts.shape != (T, B):
                raise ValueError(f"episode_starts must have shape (T, B) = ({T}, {B}), "
                                 f"got {tuple(episode_starts.shape)}")
            keep = (1.0 - episode_starts.to(x.dtype)).view(T, B, 1, 1)
        else:
            keep = torch.ones(T, B, 1, 1, dtype=x.dtype, device=x.device)
        if T == 1:  # one step (rollout collection): the scan's result without its bookkeeping
            before = keep * state.unsqueeze(0)  # M_0, reset: (1, B, H, state_dim)
            return self._augment(x, self.read(before)), ((keep * a) * state.unsqueeze(0) + g)[0]
        states = linear_scan(keep * a, g, state)  # (T, B, H, state_dim): M_1 .. M_T
        if self.floor == 0:  # eq. 2 written straight into the output, reset and all
            return _Augment.apply(x, keep.view(T, B, 1), state, states).flatten(-2), states[-1]
        before = keep * torch.cat([state.unsqueeze(0), states[:-1]], dim=0)  # M_{t-1}, reset
        return self._augment(x, self.read(before)), states[-1]

    def step(self, u_t: Tensor, state: Tensor | None = None,
             episode_start: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """One step: ``u_t (B, F)``, the state, ``episode_start (B,)`` (1: empty the memory first).

        :return: ``y_t (B, output_dim)`` and the new state.
        """
        if u_t.dim() != 2 or u_t.shape[-1] != self.in_features:
            raise ValueError(f"u_t must have shape (B, {self.in_features}), got {tuple(u_t.shape)}")
        state = _memory(self.initial_state(u_t.shape[0], u_t.device) if state is None else state)
        if episode_start is not None:
            state = state * (1.0 - episode_start.to(state.dtype)).view(-1, 1, 1)
        x = torch.sigmoid(self.linear(u_t))  # eq. 1: (B, F) -> (B, H)
        y = self._augment(x, self.read(state))  # eq. 2, reads M_{t-1}
        a, g = self._write(u_t, x)
        return y, self._decays(a) * state + self._inputs(g)  # eq. 11

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"tau={self.tau}, gamma={self.gamma}, write={self.write!r}, "
                f"addressed={self.addressed}, mem_dim={self.mem_dim}, "
                f"output_dim={self.output_dim}")
