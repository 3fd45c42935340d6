"""Memory cores: sequence forward equals step-by-step, episode starts cut memory, errors."""

import pytest
import torch

from memagent.memory.core import MemoryCore, core_names, make_core

T, B, F = 13, 4, 6


def _nmn_available() -> bool:
    try:
        from memagent.memory.nmn import NMNLayer  # noqa: F401
    except ImportError:
        return False
    return True


CORES = [pytest.param(name, marks=pytest.mark.skipif(
    name == "nmn" and not _nmn_available(), reason="memagent.memory.nmn.NMNLayer not built yet"))
    for name in core_names()]


def _core(name: str, **kwargs) -> MemoryCore:
    torch.manual_seed(0)
    if name == "hopfield":
        kwargs.setdefault("capacity", 9)  # smaller than the sequences below: the window matters
    return make_core(name, F, **kwargs)


def _warm_state(core: MemoryCore, steps: int = 11):
    """A non-trivial state: the core after a random prefix without episode starts."""
    with torch.no_grad():
        _, state = core(torch.randn(steps, B, F), core.initial_state(B), torch.zeros(steps, B))
    return state


@pytest.mark.parametrize("name", CORES)
def test_sequence_forward_equals_step_by_step(name):
    core = _core(name)
    x = torch.randn(T, B, F)
    starts = (torch.rand(T, B) < 0.25).float()
    starts[0, 0], starts[5, 1] = 1.0, 1.0
    state = _warm_state(core)
    with torch.no_grad():
        y, final = core(x, state, starts)
        steps, s = [], state
        for t in range(T):
            y_t, s = core(x[t:t + 1], s, starts[t:t + 1])
            steps.append(y_t)
    assert y.shape == (T, B, core.output_dim)
    torch.testing.assert_close(y, torch.cat(steps), atol=1e-5, rtol=1e-4)
    for a, b in zip(final, s, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", CORES)
def test_episode_start_cuts_memory(name):
    core = _core(name)
    x = torch.randn(T, B, F)
    starts = torch.zeros(T, B)
    starts[6] = 1.0  # every env starts a new episode at step 6
    with torch.no_grad():
        y1, _ = core(x, _warm_state(core, 11), starts)
        torch.manual_seed(1)
        y2, _ = core(x, _warm_state(core, 7), starts)
        x_other = x.clone()
        x_other[:6] = torch.randn(6, B, F)  # a different past before the start
        y3, _ = core(x_other, _warm_state(core, 3), starts)
        fresh, _ = core(x[6:], core.initial_state(B), starts[6:])
    assert not torch.allclose(y1[:6], y2[:6])  # before the start the carried state matters
    torch.testing.assert_close(y1[6:], y2[6:])
    torch.testing.assert_close(y1[6:], y3[6:])
    torch.testing.assert_close(y1[6:], fresh, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", CORES)
def test_initial_state_and_select(name):
    core = _core(name)
    state = core.initial_state(B)
    assert isinstance(state, tuple) and all(isinstance(s, torch.Tensor) for s in state)
    warm = _warm_state(core)
    sub = core.select_state(warm, torch.tensor([2]))
    y, _ = core(torch.ones(1, 1, F), sub, torch.zeros(1, 1))
    y_all, _ = core(torch.ones(1, B, F), warm, torch.zeros(1, B))
    torch.testing.assert_close(y[0, 0], y_all[0, 2])


def test_hopfield_reads_steps_from_earlier_calls_and_gradient_reaches_them():
    """A cue stored in an earlier call (an earlier rollout) changes a later read, and the
    loss of that read has a gradient through the stored step (keys recomputed from inputs)."""
    core = _core("hopfield", capacity=64)
    cue = torch.zeros(1, 1, F)
    with torch.no_grad():
        _, s_a = core(cue + 3.0, core.initial_state(1), torch.ones(1, 1))
        _, s_b = core(cue - 3.0, core.initial_state(1), torch.ones(1, 1))
        blank = torch.ones(20, 1, F)
        _, s_a = core(blank, s_a, torch.zeros(20, 1))  # a second "rollout" without the cue
        _, s_b = core(blank, s_b, torch.zeros(20, 1))
    y_a, _ = core(blank[:5], s_a, torch.zeros(5, 1))
    y_b, _ = core(blank[:5], s_b, torch.zeros(5, 1))
    assert (y_a[-1] - y_b[-1]).abs().max() > 1e-3  # the cue 21 steps back is still read
    (y_a[-1] - y_b[-1]).square().sum().backward()
    assert core.query.weight.grad is not None and core.query.weight.grad.abs().sum() > 0
    assert core.out.weight.grad.abs().sum() > 0
    info = core.inspect()
    assert info["attention"].shape[:2] == (1, core.heads)
    assert info["attention"].shape[-1] == info["positions"].shape[-1]


def test_hopfield_window_forgets_beyond_capacity():
    core = _core("hopfield", capacity=4)
    x = torch.randn(10, 1, F)
    other = x.clone()
    other[0] = torch.randn(1, F)  # differs 9 steps before the last step, beyond the window
    with torch.no_grad():
        y1, _ = core(x, core.initial_state(1), torch.zeros(10, 1))
        y2, _ = core(other, core.initial_state(1), torch.zeros(10, 1))
    torch.testing.assert_close(y1[4:], y2[4:])
    assert not torch.allclose(y1[:4], y2[:4])


def test_make_core_errors():
    with pytest.raises(ValueError, match="known cores: gru, hopfield, lstm, nmn"):
        make_core("transformer", 4)
    with pytest.raises(ValueError, match="memory_kwargs"):
        make_core("gru", 4, hidden=3)
    with pytest.raises(ValueError, match="capacity"):
        make_core("hopfield", 4, capacity=0)
    core = make_core("gru", 4)
    with pytest.raises(ValueError, match=r"\(T, B, 4\)"):
        core(torch.zeros(3, 4), core.initial_state(3), torch.zeros(3, 1))
    with pytest.raises(ValueError, match="episode_starts"):
        core(torch.zeros(3, 2, 4), core.initial_state(2), torch.zeros(2, 3))


def test_rnn_cores_use_torch_fused_modules():
    assert isinstance(make_core("lstm", 3).rnn, torch.nn.LSTM)
    assert isinstance(make_core("gru", 3, hidden_size=8).rnn, torch.nn.GRU)
    assert make_core("gru", 3, hidden_size=8).output_dim == 8


def test_hopfield_cosine_sequence_equals_steps_and_bounds_the_read():
    """similarity='cosine': the training path equals the step path, and however large the
    query weights grow, no score leaves [-beta, beta], so the read cannot become an argmax."""
    core = _core("hopfield", similarity="cosine", beta=4.0)
    x = torch.randn(T, B, F)
    starts = torch.zeros(T, B)
    starts[0] = 1.0
    with torch.no_grad():
        core.query.weight.mul_(1e4)  # dot scores would be ~1e4: one-hot weights
        y, _ = core(x, core.initial_state(B), starts)
        s, steps = core.initial_state(B), []
        for t in range(T):
            y_t, s = core(x[t:t + 1], s, starts[t:t + 1])
            steps.append(y_t)
    torch.testing.assert_close(y, torch.cat(steps), atol=1e-5, rtol=1e-4)
    w = core.inspect()["attention"]  # (B, heads, N) of the last step: 9 stored steps in the window
    n = core.capacity
    assert w.max() <= torch.e ** 4 / (torch.e ** 4 + (n - 1) * torch.e ** -4) + 1e-6
    dot = _core("hopfield", similarity="dot", beta=4.0)
    with torch.no_grad():
        dot.query.weight.mul_(1e4)
        dot(x, dot.initial_state(B), starts)
    assert dot.inspect()["attention"].max() > 0.999  # the failure cosine prevents


def test_hopfield_similarity_errors():
    with pytest.raises(ValueError, match="similarity must be 'dot' or 'cosine', got 'l2'"):
        make_core("hopfield", 4, similarity="l2")
    with pytest.raises(ValueError, match="needs separation='softmax'"):
        make_core("hopfield", 4, similarity="cosine", separation="max")


@pytest.mark.skipif(not _nmn_available(), reason="memagent.memory.nmn.NMNLayer not built yet")
def test_nmn_core_writes_addressed_by_default_and_gradients_reach_the_cue_step():
    core = make_core("nmn", F, hidden_size=8, tau=2)
    assert core.layer.addressed and core.layer.mem_dim == 2 * (2 + 1)
    x = torch.randn(T, B, F, requires_grad=True)
    y, _ = core(x, core.initial_state(B), torch.zeros(T, B))
    y[-1].sum().backward()  # the last step's read depends on what step 0 wrote
    assert x.grad[0].abs().sum() > 0
    one_hot = make_core("nmn", F, hidden_size=8, tau=2, addressed=False)
    assert one_hot.layer.mem_dim == 2 ** (2 + 1)
    assert not make_core("nmn", F, hidden_size=8, write="external").layer.addressed
