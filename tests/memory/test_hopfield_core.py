"""The hopfield core's fast paths against the reference maths.

- ``_Attention``'s hand-written backward passes ``torch.autograd.gradcheck`` (float64) on
  both orientations of its products (a step's few queries, a sequence's many), with
  ``beta != 1`` and masks, and through the core's dot and cosine reads.
- ``HopfieldCore``'s step path (``T = 1``) and sequence path equal a per-step loop that calls
  :func:`memagent.memory.hopfield.retrieve` on keys built from the raw history (the module
  docstring's definition: same episode, causal, within ``capacity`` steps), and each other.
"""

import math

import numpy as np
import pytest
import torch

from memagent.memory.episodic import HopfieldCore, _Attention
from memagent.memory.hopfield import get_similarity, retrieve


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
    # the per-head recency term lam_h * rel: its gradient too, and the forward against the same
    # reference with the term added
    rel = -torch.log1p(torch.rand(Q, N, generator=g, dtype=torch.float64) * 9)
    lam = torch.tensor([0.0, 0.5, 1.0, 2.0], dtype=torch.float64, requires_grad=True)

    def z_recency(q, k_s, k_v, lam):
        return _Attention.apply(q, k_s, k_v, bias, beta, rel, lam)[1]

    assert torch.autograd.gradcheck(z_recency, (q, k_s, k_v, lam))
    scores = scores + lam.view(1, h, 1, 1) * rel
    torch.testing.assert_close(z_recency(q, k_s, k_v, lam),
                               (torch.softmax(scores, -1) @ k_v.unsqueeze(1)).view(B, heads_q, D))


@pytest.mark.parametrize("similarity", ["dot", "cosine"])
@pytest.mark.parametrize("Q", [1, 20], ids=["step", "sequence"])
def test_core_read_passes_gradcheck(similarity, Q):
    core = HopfieldCore(3, heads=4, capacity=8, beta=1.7, similarity=similarity,
                        recency=True).double()
    g = torch.Generator().manual_seed(1)
    B, N, D = 2, 9, core.key_dim
    q = torch.randn(B, core.heads, Q, D, generator=g, dtype=torch.float64, requires_grad=True)
    keys = torch.randn(B, N, D, generator=g, dtype=torch.float64, requires_grad=True)
    mask = _mask(B, Q, N, g)
    back = torch.randint(0, 30, (Q, N), generator=g)  # steps from each query back to each key
    assert torch.autograd.gradcheck(lambda q, keys: core._read(q, keys, mask, back)[1], (q, keys))
    sim = _with_recency(core, -torch.log1p(back.double()).view(1, 1, Q, N))
    z, w = retrieve(q, keys.unsqueeze(1), similarity=sim, beta=core.beta,
                    mask=mask.unsqueeze(1), return_weights=True)
    w_core, z_core = core._read(q, keys, mask, back)
    torch.testing.assert_close(z_core, z)
    torch.testing.assert_close(w_core, w)
    without, _ = retrieve(q, keys.unsqueeze(1), similarity=similarity, beta=core.beta,
                          mask=mask.unsqueeze(1), return_weights=True)
    torch.testing.assert_close(core._read(q, keys, mask)[1], without)  # back=None: no term


def _with_recency(core: HopfieldCore, rel: torch.Tensor):
    """The core's scores as a ``retrieve`` similarity: ``sim + lam_h rel / beta`` per head
    (softmax separation multiplies scores by beta), heads on dim -3."""
    base = get_similarity(core.similarity)
    lam = core.recency.detach().view(-1, 1, 1)
    return lambda q, k: base(q, k) + lam * rel / core.beta


def _reference(core: HopfieldCore, x: torch.Tensor, starts: torch.Tensor) -> torch.Tensor:
    """The core from a fresh state, one retrieve() per env and step over its history of
    embedded inputs (``core.embed``; the inputs themselves when it stores them raw); with
    ``skip_repeats`` an earlier step whose input equals the one before it is not read."""
    raw = x
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
            if getattr(core, "skip_repeats", False):
                js = torch.tensor([j for j in js.tolist() if j == t or j == begin
                                   or not torch.equal(raw[j, b], raw[j - 1, b])])
            p = (js - begin).to(x.dtype)[:, None]  # positions in the episode
            keys = torch.cat([x[js, b], torch.log1p(p) / math.log1p(C), 1 / (1 + p)], -1)  # (N, D)
            q = core.query(x[t, b]).view(h, D)
            sim = core.similarity
            if core.recency is not None:  # -log(1 + steps back) per key, lam_h per head
                rel = -torch.log1p((t - js).to(x.dtype))  # (N,)
                base = get_similarity(core.similarity)
                lam = core.recency.view(h, 1)
                sim = lambda q, k, rel=rel, base=base, lam=lam: base(q, k) + lam * rel / core.beta  # noqa: E731
            z = retrieve(q, keys, similarity=sim, beta=core.beta)  # (h, D)
            head = [x[t, b]]
            if core.previous:  # the episode's previous step, 0 on its first
                head.append(x[t - 1, b] if t > begin else torch.zeros_like(x[t, b]))
            y[t, b] = torch.tanh(core.out(torch.cat([*head, z.reshape(-1)])))
    return y


@pytest.mark.parametrize("previous", [True, False], ids=["previous", "no-previous"])
@pytest.mark.parametrize("recency", [True, False], ids=["recency", "no-recency"])
@pytest.mark.parametrize("embed_dim", [5, None])
@pytest.mark.parametrize("similarity", ["dot", "cosine"])
def test_step_and_sequence_paths_equal_retrieve(similarity, embed_dim, recency, previous):
    torch.manual_seed(2)
    T, B, F = 17, 3, 4
    core = HopfieldCore(F, output_dim=6, heads=2, capacity=5, beta=3.0, similarity=similarity,
                        embed_dim=embed_dim, recency=recency, previous=previous).double()
    if previous:  # e_{t-1}'s columns start at 0: give them weights to be read by
        E = core.embed_dim
        torch.nn.init.normal_(core.out.weight.data[:, E:2 * E])
    assert (core.recency is None) == (recency is False)  # True: lam starts at (0, 2), 2 heads
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


@pytest.mark.parametrize("embed_dim", [5, None])
@pytest.mark.parametrize("similarity", ["dot", "cosine"])
def test_skip_repeats_reads_a_run_of_equal_inputs_as_its_first_step(similarity, embed_dim):
    """``skip_repeats=True``: the step path, the sequence path and a sequence split over two
    calls equal the per-step reference that leaves repeated inputs out of every later read;
    the repeats get exactly zero attention, and the first step of an episode is read even
    when it equals the last step of the episode before."""
    torch.manual_seed(3)
    T, B, F = 17, 3, 4
    core = HopfieldCore(F, output_dim=6, heads=2, capacity=6, beta=3.0, similarity=similarity,
                        embed_dim=embed_dim, skip_repeats=True).double()
    torch.nn.init.normal_(core.out.weight.data[:, core.embed_dim:2 * core.embed_dim])
    x = torch.randn(T, B, F, dtype=torch.float64)
    x[2], x[3] = x[1], x[1]  # a run of three in every env
    x[10, 1] = x[9, 1]
    x[4, 0] = x[3, 0]  # an episode starts at 4 in env 0: not a repeat
    x[13:16, 2] = x[12, 2]  # a longer run in env 2
    starts = torch.zeros(T, B)
    starts[0] = 1
    starts[4, 0] = starts[11, 1] = 1
    with torch.no_grad():
        ref = _reference(core, x, starts)
        seq, _ = core(x, core.initial_state(B), starts)
        state, steps = core.initial_state(B), []
        for t in range(T):
            y_t, state = core(x[t:t + 1], state, starts[t:t + 1])
            steps.append(y_t)
            if t == 8:  # env 1 reads steps 0, 1, 4..8: steps 2 and 3 repeat step 1
                seen = core.inspect()
                w, pos = seen["attention"][1], seen["positions"][1]
                assert (w[:, np.isin(pos, [2, 3])] == 0).all()
                assert (w[:, pos == 1] > 0).all()
        a, s_ = core(x[:7], core.initial_state(B), starts[:7])
        b, _ = core(x[7:], s_, starts[7:])
        plain = HopfieldCore(F, output_dim=6, heads=2, capacity=6, beta=3.0,
                             similarity=similarity, embed_dim=embed_dim).double()
        plain.load_state_dict(core.state_dict())
        unequal = torch.randn(T, B, F, dtype=torch.float64)  # no repeats: the plain core's reads
        torch.testing.assert_close(core(unequal, core.initial_state(B), starts)[0],
                                   plain(unequal, plain.initial_state(B), starts)[0])
    torch.testing.assert_close(seq, ref)
    torch.testing.assert_close(torch.cat(steps), ref)
    torch.testing.assert_close(torch.cat([a, b]), ref)
    assert not torch.allclose(seq, plain(x, plain.initial_state(B), starts)[0])  # it matters


def test_recency_weights_steps_by_how_far_back_and_old_checkpoints_load():
    """With a query of zero (every similarity equal), head h's read weighs the step d back
    by (1 + d) ** -lam_h, whatever the episode position; lam = 0 reads uniformly."""
    assert HopfieldCore(3).recency is None  # off by default
    core = HopfieldCore(3, heads=4, capacity=64, embed_dim=None, recency=True)
    assert core.recency.tolist() == [0.0, 0.0, 1.0, 2.0]  # recency=True's starting lams
    with torch.no_grad():
        core.recency.copy_(torch.tensor([0.0, 0.5, 1.0, 2.0]))  # four different lams to read by
    with torch.no_grad():
        core.query.weight.zero_()
        core.query.bias.zero_()
    T = 40
    x = torch.randn(T, 1, 3)
    starts = torch.zeros(T, 1)
    starts[0] = starts[25] = 1  # the last read is 14 steps into its episode
    with torch.no_grad():
        for path in ("sequence", "step"):
            if path == "sequence":
                core(x, core.initial_state(1), starts)
            else:
                state = core.initial_state(1)
                for t in range(T):
                    _, state = core(x[t:t + 1], state, starts[t:t + 1])
            seen = core.inspect()
            p, w = seen["positions"][0], seen["attention"][0]  # (N,), (heads, N)
            mine = p >= 0 if path == "step" else np.arange(len(p)) >= len(p) - 15
            back = 14 - p[mine]  # steps back from the last read
            for h, lam in enumerate([0.0, 0.5, 1.0, 2.0]):
                expect = (1.0 + back) ** -lam
                np.testing.assert_allclose(w[h, mine], expect / expect.sum(), rtol=1e-5)
                assert w[h, ~mine].sum() == 0  # the earlier episode is not read
    # a checkpoint saved without the term loads with lam = 0 (it then reads as it did)
    old = {k: v for k, v in core.state_dict().items() if k != "recency"}
    fresh = HopfieldCore(3, heads=4, capacity=64, embed_dim=None, recency=True)
    fresh.load_state_dict(old)
    assert fresh.recency.tolist() == [0.0] * 4
    assert HopfieldCore(3, separation="max", similarity="dot", recency=None).recency is None
    assert HopfieldCore(3, recency=None).recency.tolist() == [0.0, 0.0, 1.0, 2.0]  # softmax: on
    assert HopfieldCore(3, heads=8, recency=True).recency.tolist() == [0.0] * 4 + [0.25, 0.5, 1, 2]
    with pytest.raises(ValueError, match="recency needs separation='softmax'"):
        HopfieldCore(3, separation="max", similarity="dot", recency=True)
    with pytest.raises(ValueError, match="one initial weight per head"):
        HopfieldCore(3, heads=4, recency=[1.0, 2.0])


def test_previous_starts_as_without_it_and_old_checkpoints_load():
    """previous=True (the default): e_{t-1}'s columns of the output map start at 0, so the core
    starts as the one without them, from the same draws; what it reads through them is e_{t-1}
    (tested against the reference above); a checkpoint without them loads and reads as it did."""
    assert HopfieldCore(5).previous is True
    torch.manual_seed(0)
    old = HopfieldCore(5, output_dim=6, capacity=8, previous=False).double()
    torch.manual_seed(0)
    core = HopfieldCore(5, output_dim=6, capacity=8).double()
    T, B = 12, 3
    x = torch.randn(T, B, 5, dtype=torch.double)
    starts = torch.zeros(T, B, dtype=torch.double)
    starts[0] = 1
    starts[5, 1] = starts[9, 2] = 1
    y_old = old(x, old.initial_state(B), starts)[0]
    E = core.embed_dim  # the same draws, and e_{t-1}'s columns 0: the same outputs at init
    w = core.out.weight.detach()
    assert torch.equal(torch.cat([w[:, :E], w[:, 2 * E:]], 1), old.out.weight) and not w[:, E:2 * E].any()
    torch.testing.assert_close(core(x, core.initial_state(B), starts)[0], y_old)
    with torch.no_grad():
        torch.nn.init.normal_(core.out.weight[:, E:2 * E])
    y = core(x, core.initial_state(B), starts)[0]
    first = torch.zeros(T, B, dtype=torch.bool)
    first[0], first[5, 1], first[9, 2] = True, True, True
    # only an episode's first step (e_{t-1} = 0) reads as without the term
    torch.testing.assert_close(y[first], y_old[first])
    assert (y[~first] - y_old[~first]).abs().amax(-1).min() > 1e-3
    fresh = HopfieldCore(5, output_dim=6, capacity=8).double()
    fresh.load_state_dict(old.state_dict())  # saved without e_{t-1}'s columns
    torch.testing.assert_close(fresh(x, fresh.initial_state(B), starts)[0], y_old)
    with pytest.raises(ValueError, match="previous must be True or False"):
        HopfieldCore(5, previous="yes")
