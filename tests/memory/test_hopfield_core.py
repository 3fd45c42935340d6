"""The hopfield core's fast paths against the reference maths.

- ``_Attention``'s hand-written backward passes ``torch.autograd.gradcheck`` (float64) on
  both orientations of its products (a step's few queries, a sequence's many), with
  ``beta != 1`` and masks, and through the core's dot and cosine reads.
- ``HopfieldCore``'s step path (``T = 1``) and sequence path equal a per-step loop that calls
  :func:`memagent.memory.hopfield.retrieve` on keys built from the raw history (the module
  docstring's definition: same episode, causal, within ``capacity`` steps), and each other.
"""

import math

import pytest
import torch

from memagent.memory.episodic import HopfieldCore, _Attention
from memagent.memory.hopfield import retrieve


def _mask(B, Q, N, g):
    """A random (B, Q, N) mask with at least one True per row (as in the core)."""
    mask = torch.rand(B, Q, N, generator=g) < 0.5
    mask[..., 0] = True
    return mask


@pytest.mark.parametrize("heads_q", [4, 64], ids=["step", "sequence"])  # h*Q < 64: plain products
@pytest.mark.parametrize("beta", [1.0, 2.5])
def test_attention_backward_passes_gradcheck(heads_q, beta):
    g = torch.Generator().manual_seed(0)
    B, N, D, h = 2, 7, 5, 4
    Q = heads_q // h
    q = torch.randn(B, heads_q, D, generator=g, dtype=torch.float64, requires_grad=True)
    k_s = torch.randn(B, N, D, generator=g, dtype=torch.float64, requires_grad=True)
    k_v = torch.randn(B, N, D, generator=g, dtype=torch.float64, requires_grad=True)
    bias = torch.where(_mask(B, Q, N, g), 0.0, float("-inf")).to(torch.float64)

    def z_only(q, k_s, k_v):
        return _Attention.apply(q, k_s, k_v, bias, beta)[1]

    assert torch.autograd.gradcheck(z_only, (q, k_s, k_v))
    # forward: the reference softmax attention, heads folded into the query axis
    scores = beta * q.view(B, h, Q, D) @ k_s.unsqueeze(1).transpose(-1, -2) + bias.unsqueeze(1)
    ref = torch.softmax(scores, -1) @ k_v.unsqueeze(1)  # (B, h, Q, D)
    torch.testing.assert_close(z_only(q, k_s, k_v), ref.view(B, heads_q, D))
    # one input without a gradient: the others' gradients are unchanged
    assert torch.autograd.gradcheck(lambda q, k_v: z_only(q, k_s.detach(), k_v), (q, k_v))


@pytest.mark.parametrize("similarity", ["dot", "cosine"])
@pytest.mark.parametrize("Q", [1, 20], ids=["step", "sequence"])
def test_core_read_passes_gradcheck(similarity, Q):
    core = HopfieldCore(3, heads=4, capacity=8, beta=1.7, similarity=similarity).double()
    g = torch.Generator().manual_seed(1)
    B, N, D = 2, 9, core.key_dim
    q = torch.randn(B, core.heads, Q, D, generator=g, dtype=torch.float64, requires_grad=True)
    keys = torch.randn(B, N, D, generator=g, dtype=torch.float64, requires_grad=True)
    mask = _mask(B, Q, N, g)
    assert torch.autograd.gradcheck(lambda q, keys: core._read(q, keys, mask)[1], (q, keys))
    z, w = retrieve(q, keys.unsqueeze(1), similarity=similarity, beta=core.beta,
                    mask=mask.unsqueeze(1), return_weights=True)
    w_core, z_core = core._read(q, keys, mask)
    torch.testing.assert_close(z_core, z)
    torch.testing.assert_close(w_core, w)


def _reference(core: HopfieldCore, x: torch.Tensor, starts: torch.Tensor) -> torch.Tensor:
    """The core from a fresh state, one retrieve() per env and step over its history of
    embedded inputs (``core.embed``; the inputs themselves when it stores them raw)."""
    if core.embed is not None:
        x = core.embed(x)
    T, B, _ = x.shape
    C, h, D = core.capacity, core.heads, core.key_dim
    y = torch.zeros(T, B, core.output_dim, dtype=x.dtype)
    for b in range(B):
        begin = 0
        for t in range(T):
            if starts[t, b]:
                begin = t
            js = torch.arange(max(begin, t - C + 1), t + 1)  # same episode, within the window
            p = (js - begin).to(x.dtype)[:, None]  # positions in the episode
            keys = torch.cat([x[js, b], torch.log1p(p) / math.log1p(C), 1 / (1 + p)], -1)  # (N, D)
            q = core.query(x[t, b]).view(h, D)
            z = retrieve(q, keys, similarity=core.similarity, beta=core.beta)  # (h, D)
            y[t, b] = torch.tanh(core.out(torch.cat([x[t, b], z.reshape(-1)])))
    return y


@pytest.mark.parametrize("embed_dim", [5, None])
@pytest.mark.parametrize("similarity", ["dot", "cosine"])
def test_step_and_sequence_paths_equal_retrieve(similarity, embed_dim):
    torch.manual_seed(2)
    T, B, F = 17, 3, 4
    core = HopfieldCore(F, output_dim=6, heads=2, capacity=5, beta=3.0, similarity=similarity,
                        embed_dim=embed_dim).double()
    x = torch.randn(T, B, F, dtype=torch.float64)
    starts = torch.zeros(T, B)
    starts[0] = 1
    starts[4, 0] = starts[11, 1] = starts[12, 2] = 1  # episodes shorter and longer than capacity
    with torch.no_grad():
        ref = _reference(core, x, starts)
        seq, _ = core(x, core.initial_state(B), starts)  # one masked attention
        state, steps = core.initial_state(B), []
        for t in range(T):  # rollouts: T = 1
            y_t, state = core(x[t:t + 1], state, starts[t:t + 1])
            steps.append(y_t)
        a, s = core(x[:7], core.initial_state(B), starts[:7])  # a sequence over two calls
        b, _ = core(x[7:], s, starts[7:])
    torch.testing.assert_close(seq, ref)
    torch.testing.assert_close(torch.cat(steps), ref)
    torch.testing.assert_close(torch.cat([a, b]), ref)
