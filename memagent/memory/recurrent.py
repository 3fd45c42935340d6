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

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence

State = tuple[Tensor, ...]


class MemoryCore(nn.Module):
    """Carries a state across time steps; resets where an episode starts.

    Subclasses set ``input_dim``, ``output_dim`` and ``state_batch_dim`` (the batch
    dimension of every tensor in their state) and implement :meth:`initial_state` and
    :meth:`forward`.
    """

    input_dim: int
    output_dim: int
    state_batch_dim: int = 0

    def initial_state(self, batch_size: int, device=None) -> State:
        """The state before the first step of an episode, for ``batch_size`` envs."""
        raise NotImplementedError

    def forward(self, x: Tensor, state: State, episode_starts: Tensor) -> tuple[Tensor, State]:
        """Map a sequence.

        :param x: inputs ``(T, B, F)``.
        :param state: the state before step 0 (from :meth:`initial_state` or a previous call).
        :param episode_starts: ``(T, B)``, 1 where step ``t`` of env ``b`` starts an episode:
            the core forgets everything before it.
        :return: outputs ``(T, B, H)`` and the state after step ``T - 1``.
        """
        raise NotImplementedError

    def inspect(self) -> dict[str, np.ndarray]:
        """What the last forward read, for rendering; ``{}`` if nothing."""
        return {}

    def select_state(self, state: State, index: Tensor) -> State:
        """The state of the envs ``index`` (a 1-D long tensor), e.g. for a minibatch of envs."""
        return tuple(s.index_select(self.state_batch_dim, index) for s in state)

    def _check_input(self, x: Tensor, episode_starts: Tensor) -> None:
        if x.dim() != 3 or x.shape[-1] != self.input_dim:
            raise ValueError(f"{type(self).__name__} expects x of shape (T, B, {self.input_dim}), "
                             f"got {tuple(x.shape)}")
        if episode_starts.shape != x.shape[:2]:
            raise ValueError(f"episode_starts must have shape (T, B) = {tuple(x.shape[:2])}, "
                             f"got {tuple(episode_starts.shape)}")


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
        out, h = self.rnn(x, state if len(state) == 2 else state[0])
        return out, (h if isinstance(h, tuple) else (h,))

    def forward(self, x: Tensor, state: State, episode_starts: Tensor) -> tuple[Tensor, State]:
        self._check_input(x, episode_starts)
        T, B, F = x.shape
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


def _core_classes() -> dict[str, type[MemoryCore]]:
    from memagent.memory.episodic import HopfieldCore, NMNCore

    return {"lstm": LSTMCore, "gru": GRUCore, "nmn": NMNCore, "hopfield": HopfieldCore}


CORE_NAMES = ("lstm", "gru", "nmn", "hopfield")


def make_core(name: str, input_dim: int, **kwargs) -> MemoryCore:
    """Build the memory core called ``name`` (one of :data:`CORE_NAMES`).

    :param name: ``"lstm"``, ``"gru"``, ``"nmn"`` or ``"hopfield"``.
    :param input_dim: size of the features the core reads at every step.
    :param kwargs: the core's own parameters (e.g. ``hidden_size`` or ``capacity``).
    """
    classes = _core_classes()
    if name not in classes:
        raise ValueError(f"unknown memory core {name!r}; known cores: {', '.join(CORE_NAMES)} "
                         "(or memory=None for no memory)")
    if int(input_dim) < 1:
        raise ValueError(f"input_dim must be >= 1, got {input_dim}")
    try:
        return classes[name](int(input_dim), **kwargs)
    except TypeError as err:
        raise ValueError(f"bad memory_kwargs for the {name!r} core: {err}") from err
