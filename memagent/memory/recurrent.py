"""Memory cores for recurrent policies: one interface, four kinds of memory.

A :class:`MemoryCore` carries a state across time steps and forgets it where an episode
starts. It maps a whole sequence at once, ``x (T, B, F) -> y (T, B, H)``, so training
runs one call per minibatch instead of a Python loop over time steps (sb3-contrib's
RecurrentPPO loops per step). Cores:

- ``"lstm"``, ``"gru"``: torch's cuDNN-capable :class:`torch.nn.LSTM` / :class:`torch.nn.GRU`.
  Episode resets split each env's sequence into segments at its episode starts; the
  segments are padded into ``(L, S, F)`` and run in one call, the first segment of each env
  from the carried state, the others from zeros (the final state comes from the last
  output, or from a packed rerun of each env's last segment for an LSTM).
- ``"nmn"``: the neural memory network layer (Biggs & Nuttall, eq. 1, 2, 8, 11), a memory
  bank per hidden neuron, computed over the sequence with a parallel scan
  (:class:`memagent.memory.nmn.NMNLayer`); see :mod:`memagent.memory.episodic`.
- ``"hopfield"``: episodic associative memory read with a Universal-Hopfield retrieval
  (Millidge et al. 2022, eq. 1: similarity -> separation -> projection), see
  :mod:`memagent.memory.episodic`.

``make_core(name, input_dim, **kwargs)`` builds one by name.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence

from memagent.memory.core import MemoryCore, State, make_core, register_core  # noqa: F401  (make_core: re-exported)


class _GRUSequence(torch.autograd.Function):
    """A one-layer GRU over a whole sequence, with a hand-written backward (CPU).

    The same maths as :class:`torch.nn.GRU` (gates ``r, z, n``; ``h' = (1 - z) n + z h``)
    with its parameters. torch's CPU GRU records ~12 autograd nodes per time step; here the
    forward is 5 in-place kernels per step (the recurrent matmul adds into a buffer that
    already holds the input's ``r, z`` gates) and the backward 3 (the gates' local derivatives are computed for all
    steps at once before the loop, so a step is one broadcast multiply, one ``addcmul`` and
    one ``addmm``). Weight gradients are one matmul each after the loop, oriented so MKL's
    fast path takes them (``(x^T dG)^T``, not ``dG^T x``: 4x faster at these shapes).
    Outputs and gradients match torch's to ~1e-7 (float32), ~1e-14 (float64).
    """

    @staticmethod
    def forward(ctx, x, h0, w_ih, w_hh, b_ih, b_hh):  # x (L, S, F), h0 (S, H)
        L, S, F = x.shape
        H = h0.shape[-1]
        # gates (L, S, 3H): every step's recurrent-matmul bias (the input's gates plus b_hh
        # for r and z, b_hh alone for n: r multiplies the recurrent part of n only); the
        # step's addmm_ adds h W_hh^T in place, then sigmoid_ turns r, z into gates, so it
        # ends as [r, z | gh_n]. n starts as the input's n part.
        gates = torch.addmm(b_ih, x.reshape(L * S, F), w_ih.t()).view(L, S, 3 * H)
        n = gates[..., 2 * H:].clone()
        gates[..., :2 * H] += b_hh[:2 * H]
        gates[..., 2 * H:] = b_hh[2 * H:]
        w_hh_t = w_hh.t()
        hs = x.new_empty(L + 1, S, H)  # hs[0] = h0, hs[t + 1] = output t
        hs[0] = h0
        # per-step views made once (indexing in the loop costs more than the kernels)
        g_t, rz_t = gates.unbind(0), gates[..., :2 * H].unbind(0)
        r_t, z_t, gh_n = gates[..., :H].unbind(0), gates[..., H:2 * H].unbind(0), gates[..., 2 * H:].unbind(0)
        n_t, hs_t = n.unbind(0), hs.unbind(0)
        h = h0
        for t in range(L):
            g_t[t].addmm_(h, w_hh_t)
            rz_t[t].sigmoid_()
            n_t[t].addcmul_(r_t[t], gh_n[t]).tanh_()
            h = torch.lerp(n_t[t], h, z_t[t], out=hs_t[t + 1])  # n + z (h - n)
        ctx.save_for_backward(x, w_ih, w_hh, hs, gates, n)
        return hs[1:]

    @staticmethod
    def backward(ctx, d_out):
        x, w_ih, w_hh, hs, gates, n = ctx.saved_tensors
        L, S, F = x.shape
        H = hs.shape[-1]
        r, z, gh_n = gates[..., :H], gates[..., H:2 * H], gates[..., 2 * H:]
        h_prev = hs[:-1]  # (L, S, H)
        a_n = (1 - z) * (1 - n * n)  # d n_pre / d h'
        # d gh / d h' of every step, gates (r, z, n), so a step's d gh is one broadcast mul
        coef = torch.cat([a_n * gh_n * r * (1 - r), (h_prev - n) * z * (1 - z), a_n * r], -1)
        coef_t = coef.view(L, S, 3, H).unbind(0)
        d_gh = x.new_empty(L, S, 3 * H)
        dgh_t, dgh3_t = d_gh.unbind(0), d_gh.view(L, S, 3, H).unbind(0)
        # dh[t + 1]: the gradient reaching h_t, which starts as y_t's and gathers step t + 1's;
        # dh[0]: h0's
        dh = x.new_empty(L + 1, S, H)
        dh[0] = 0.0
        dh[1:] = d_out
        dh_t, dh3_t = dh.unbind(0), dh.unsqueeze(2).unbind(0)
        z_t = z.unbind(0)
        for t in range(L - 1, -1, -1):
            torch.mul(dh3_t[t + 1], coef_t[t], out=dgh3_t[t])
            dh_t[t].addcmul_(dh_t[t + 1], z_t[t]).addmm_(dgh_t[t], w_hh)
        d_gi = torch.cat([d_gh[..., :2 * H], dh[1:] * a_n], -1).view(L * S, 3 * H)
        d_gh = d_gh.view(L * S, 3 * H)
        return ((w_ih.t() @ d_gi.t()).t().view(L, S, F), dh[0],
                (x.reshape(L * S, F).t() @ d_gi).t(), (h_prev.reshape(L * S, H).t() @ d_gh).t(),
                d_gi.sum(0), d_gh.sum(0))


class _RNNCore(MemoryCore):
    """Shared code of the LSTM and GRU cores (torch's fused modules plus packing)."""

    state_batch_dim = 1
    rnn_class: type[nn.RNNBase]

    def __init__(self, input_dim: int, hidden_size: int = 64, num_layers: int = 1,
                 keep_bias: float = 1.0):
        super().__init__()
        if hidden_size < 1 or num_layers < 1:
            raise ValueError(f"hidden_size and num_layers must be >= 1, got {hidden_size}, {num_layers}")
        self.input_dim, self.output_dim = int(input_dim), int(hidden_size)
        self.num_layers = num_layers
        self.rnn = self.rnn_class(input_dim, hidden_size, num_layers=num_layers)
        for name, param in self.rnn.named_parameters():
            if "weight" in name:
                nn.init.orthogonal_(param)
            elif "bias" in name:  # remember by default: keep-gate bias (Jozefowicz et al. 2015)
                nn.init.zeros_(param)
                with torch.no_grad():
                    param[self.keep_gate * hidden_size:(self.keep_gate + 1) * hidden_size] = keep_bias

    def _zeros(self, batch_size: int, device) -> Tensor:
        return torch.zeros(self.num_layers, batch_size, self.output_dim, device=device)

    def initial_state(self, batch_size: int, device=None) -> State:
        n = 2 if self.rnn_class is nn.LSTM else 1
        return tuple(self._zeros(batch_size, device) for _ in range(n))

    def _run(self, x, state: State):
        if (isinstance(x, Tensor) and x.shape[0] > 1 and x.device.type == "cpu"
                and isinstance(self.rnn, nn.GRU) and self.num_layers == 1):
            rnn = self.rnn  # torch's CPU GRU is a per-step autograd loop: use the fused one
            out = _GRUSequence.apply(x, state[0][0], rnn.weight_ih_l0, rnn.weight_hh_l0,
                                     rnn.bias_ih_l0, rnn.bias_hh_l0)
            return out, (out[-1:],)
        out, h = self.rnn(x, state if len(state) == 2 else state[0])
        return out, (h if isinstance(h, tuple) else (h,))

    def _cell(self, x: Tensor, state: State, episode_starts: Tensor) -> tuple[Tensor, State]:
        """One step of a one-layer core on a CPU (rollouts): torch's own cell functions,
        without the module's per-call checks (8 envs: GRU 79 -> 56 us, LSTM 129 -> 65 us per
        core step). ``gru_cell`` is the kernel ``nn.GRU`` runs per step on a CPU (bitwise
        equal); ``lstm_cell`` is within 4e-7 of the mkldnn LSTM the sequences use."""
        rnn = self.rnn
        keep = (episode_starts[0] == 0).to(x.dtype).unsqueeze(-1)  # (B, 1)
        weights = (rnn.weight_ih_l0, rnn.weight_hh_l0, rnn.bias_ih_l0, rnn.bias_hh_l0)
        if isinstance(rnn, nn.GRU):
            h = torch.gru_cell(x[0], state[0][0] * keep, *weights)[None]
            return h, (h,)
        h, c = torch.lstm_cell(x[0], (state[0][0] * keep, state[1][0] * keep), *weights)
        return h[None], (h[None], c[None])

    def forward(self, x: Tensor, state: State, episode_starts: Tensor) -> tuple[Tensor, State]:
        self._check_input(x, episode_starts)
        T, B, F = x.shape
        if T == 1 and self.num_layers == 1 and x.device.type == "cpu":
            return self._cell(x, state, episode_starts)
        starts = episode_starts.to(torch.bool)
        keep = (~starts[0]).to(x.dtype).view(1, B, 1)  # carry the state unless step 0 starts
        if T == 1 or not starts[1:].any():  # no reset inside the sequence: one plain call
            return self._run(x, tuple(s * keep for s in state))
        # Split every env's sequence at its episode starts into S segments.
        flags = starts.t().clone()  # (T, B) -> (B, T)
        flags[:, 0] = True
        flags = flags.reshape(-1)  # (B, T) -> (B*T,)
        seg = torch.cumsum(flags.long(), 0) - 1  # segment id of every step, (B*T,)
        n_seg = int(seg[-1]) + 1
        idx = torch.arange(B * T, device=x.device)
        seg_begin = idx[flags]  # (S,) flat index where each segment begins
        pos = idx - seg_begin[seg]  # position inside the segment, (B*T,)
        lengths = torch.bincount(seg, minlength=n_seg)  # (S,)
        max_len = int(lengths.max())
        padded = x.new_zeros(max_len, n_seg, F)
        padded[pos, seg] = x.transpose(0, 1).reshape(B * T, F)  # (T, B, F) -> (B*T, F) -> (L, S, F)
        first = seg.view(B, T)[:, 0]  # (B,) first segment of every env
        last = seg.view(B, T)[:, -1]  # (B,) last segment of every env
        h0 = []
        for s in state:
            z = s.new_zeros(s.shape[0], n_seg, s.shape[2])
            z[:, first] = s * keep
            h0.append(z)
        # One padded call (padding only after each segment's end, so every valid output is
        # exact): torch's fused kernels (mkldnn LSTM on CPU, cuDNN) are much faster unpacked.
        out, _ = self._run(padded, tuple(h0))  # (L, S, H)
        y = out[pos, seg].view(B, T, -1).transpose(0, 1)  # (B*T, H) -> (B, T, H) -> (T, B, H)
        if isinstance(self.rnn, nn.GRU) and self.num_layers == 1:
            return y, (y[-1:],)  # a 1-layer GRU's state is its last output
        # the state after step T-1: rerun each env's last segment, packed, from its own start
        last_len = lengths[last]  # (B,)
        h_last = tuple(h[:, last] for h in h0)
        packed = pack_padded_sequence(padded[:, last], last_len.cpu(), enforce_sorted=False)
        _, h_n = self._run(packed, h_last)
        return y, h_n


@register_core("lstm", width="hidden_size")
class LSTMCore(_RNNCore):
    """An :class:`torch.nn.LSTM` core; state ``(h, c)``, each ``(num_layers, B, hidden_size)``.

    :param input_dim: size of the input features ``F``.
    :param hidden_size: size of the output ``H`` and of the hidden state.
    :param num_layers: stacked LSTM layers.
    :param keep_bias: initial bias of the forget gate in both bias vectors (0: no bias;
        larger keeps memories longer at the start of training).
    """

    rnn_class = nn.LSTM
    keep_gate = 1  # gates (i, f, g, o): the forget gate


@register_core("gru", width="hidden_size")
class GRUCore(_RNNCore):
    """An :class:`torch.nn.GRU` core; state ``(h,)`` with ``h`` of ``(num_layers, B, hidden_size)``.

    :param input_dim: size of the input features ``F``.
    :param hidden_size: size of the output ``H`` and of the hidden state.
    :param num_layers: stacked GRU layers.
    :param keep_bias: initial bias of the update gate in both bias vectors (0: no bias;
        larger keeps memories longer at the start of training).
    """

    rnn_class = nn.GRU
    keep_gate = 1  # gates (r, z, n): the update gate, h' = (1 - z) n + z h
