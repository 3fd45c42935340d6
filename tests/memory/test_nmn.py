"""NMNLayer (Biggs & Nuttall eq. 1, 2, 11, 12): hand-computed steps, scan == step, sizes, errors."""

import math

import pytest
import torch

from memagent.memory.nmn import NMNLayer, linear_scan


def _identity_layer(**kwargs) -> NMNLayer:
    """A 3-neuron layer whose eq. 1 is x = sigmoid(u), so inputs are logits of the outputs."""
    layer = NMNLayer(3, 3, **kwargs).double()
    with torch.no_grad():
        layer.linear.weight.copy_(torch.eye(3, dtype=torch.double))
        layer.linear.bias.zero_()
    return layer


def _logit(p):
    return torch.tensor([[math.log(v / (1 - v)) for v in p]], dtype=torch.double)


def test_eq11_and_eq2_by_hand_neighbours():
    layer = _identity_layer(tau=2, gamma=0.5)
    x = [0.8, 0.3, 0.6]  # rounded: fires [1, 0, 1]
    m0 = torch.arange(24, dtype=torch.double).view(1, 3, 8) / 10
    y, m1 = layer.step(_logit(x), m0)
    # eq. 2 reads the memory before the write: [x_1, x_1 M_1, x_2, x_2 M_2, x_3, x_3 M_3]
    expected_y = torch.cat([torch.cat([torch.tensor([x[j]], dtype=torch.double), x[j] * m0[0, j]]) for j in range(3)])
    torch.testing.assert_close(y[0], expected_y.double(), rtol=0, atol=1e-12)
    # eq. 11: windows (j-1, j, j+1) mod 3 of the rounded outputs, read as binary numbers:
    # neuron 0: (r2, r0, r1) = (1, 1, 0) -> 6; neuron 1: (1, 0, 1) -> 5; neuron 2: (0, 1, 1) -> 3
    expected = m0.clone()[0]
    expected[0] *= 0.5  # fired: decayed by gamma
    expected[2] *= 0.5  # neuron 1 did not fire: kept
    expected[0, 6] += 1
    expected[1, 5] += 1
    expected[2, 3] += 1
    torch.testing.assert_close(m1[0], expected, rtol=0, atol=1e-12)
    assert layer.output_dim == 3 * (1 + 8)


def test_external_write_records_input_on_firing():
    layer = _identity_layer(write="external", gamma=0.25)
    u = _logit([0.9, 0.2, 0.7])  # fires [1, 0, 1]
    m0 = torch.ones(1, 3, 3, dtype=torch.double)
    _, m1 = layer.step(u, m0)
    torch.testing.assert_close(m1[0, 0], 0.25 + u[0])
    torch.testing.assert_close(m1[0, 1], torch.ones(3, dtype=torch.double))
    torch.testing.assert_close(m1[0, 2], 0.25 + u[0])


def test_addressed_variant_by_hand_and_sizes():
    layer = _identity_layer(tau=2, gamma=0.5, addressed=True)
    x = [0.8, 0.3, 0.6]
    _, m1 = layer.step(_logit(x), layer.initial_state(1))
    # neuron 0's window of rounded outputs (r2, r0, r1) = (1, 1, 0) as pairs (1 - r_i, r_i)
    torch.testing.assert_close(m1[0, 0], torch.tensor([0, 1, 0, 1, 1, 0]).double())
    # neuron 1 did not fire and kept its (empty) memory: window (r0, r1, r2) = (1, 0, 1)
    torch.testing.assert_close(m1[0, 1], torch.tensor([0, 1, 1, 0, 0, 1]).double())
    for tau in (1, 4, 9):
        lin = NMNLayer(2, 10, tau=tau, addressed=True)
        orth = NMNLayer(2, 10, tau=tau)
        assert lin.mem_dim == 2 * (tau + 1) and orth.mem_dim == 2 ** (tau + 1)
        assert lin.output_dim == 10 * (1 + 2 * (tau + 1))


@pytest.mark.parametrize("kwargs", [
    {}, {"write": "external"}, {"addressed": True}, {"floor": 0.3, "tau": 3},
    {"straight_through": True, "gamma": 0.7},
])
def test_sequence_mode_equals_step_mode_with_resets(kwargs):
    torch.manual_seed(0)
    layer = NMNLayer(4, 5, **kwargs).double()
    T, B = 17, 3
    u = 3 * torch.randn(T, B, 4, dtype=torch.double)
    starts = torch.zeros(T, B, dtype=torch.double)
    starts[0, 0] = starts[5, 1] = starts[6, 1] = starts[11, 2] = starts[16, 0] = 1
    s0 = torch.rand(B, 5, layer.state_dim, dtype=torch.double)
    y, s_T = layer(u, s0, starts)
    assert s_T.shape == (B, 5, layer.state_dim)
    state, ys = s0, []
    for t in range(T):
        y_t, state = layer.step(u[t], state, starts[t])
        ys.append(y_t)
    torch.testing.assert_close(y, torch.stack(ys), rtol=0, atol=1e-10)
    torch.testing.assert_close(s_T, state, rtol=0, atol=1e-10)
    # and so are the gradients (the sequence path has its own backward for eq. 2)
    g = torch.randn_like(y)
    params = list(layer.parameters())
    torch.testing.assert_close(torch.autograd.grad(y, params, g, retain_graph=True),
                               torch.autograd.grad(torch.stack(ys), params, g), rtol=0, atol=1e-10)
    # a reset really forgets: env 1 after its reset at t=6 equals a fresh run from t=6
    y_fresh, _ = layer(u[6:, 1:2], None)
    torch.testing.assert_close(y[6:, 1:2], y_fresh, rtol=0, atol=1e-10)


@pytest.mark.parametrize("method", ["parallel", "sequential", "auto"])
def test_linear_scan_matches_loop_and_underflow_is_safe(method):
    torch.manual_seed(1)
    a = torch.rand(100, 4).double() * 1e-3  # products underflow to exactly 0
    b = torch.randn(100, 4).double()
    h0 = torch.randn(4).double()
    h, out = h0, []
    for t in range(100):
        h = a[t] * h + b[t]
        out.append(h)
    got = linear_scan(a, b, h0, method=method)
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got, torch.stack(out), rtol=1e-12, atol=1e-12)


def test_linear_scan_gradients_agree_and_pass_gradcheck():
    torch.manual_seed(2)
    a = torch.rand(20, 3, 4, 1, dtype=torch.double, requires_grad=True)  # broadcast over last dim
    b = torch.randn(20, 3, 4, 5, dtype=torch.double, requires_grad=True)
    h0 = torch.randn(3, 4, 5, dtype=torch.double, requires_grad=True)
    w = torch.randn(20, 3, 4, 5, dtype=torch.double)
    grads = {}
    for method in ("parallel", "sequential", "auto"):
        got = linear_scan(a, b, h0, method=method)
        grads[method] = torch.autograd.grad((got * w).sum(), (a, b, h0))
        assert all(g.abs().sum() > 0 for g in grads[method])
    for method in ("sequential", "auto"):  # the hand-written backward against autograd's
        for g, ref in zip(grads[method], grads["parallel"], strict=True):
            torch.testing.assert_close(g, ref, rtol=1e-10, atol=1e-12)
    small = (a[:6, :2].detach().requires_grad_(), b[:6, :2].detach().requires_grad_(),
             h0[:2].detach().requires_grad_())
    assert torch.autograd.gradcheck(lambda a, b, h: linear_scan(a, b, h, method="sequential"),
                                    small)
    a1 = a[:1, :2].detach().requires_grad_()  # one decay for every step: broadcast along T
    assert torch.autograd.gradcheck(lambda a, b: linear_scan(a, b, method="sequential"),
                                    (a1, small[1]))
    with pytest.raises(ValueError, match="method must be one of"):
        linear_scan(a, b, method="fast")


def test_addressed_sequence_gradients_match_the_step_loop():
    """The addressed write's gradients flow through the memory: the sequence path (scan +
    fused eq. 2) gives the same values and gradients as ``step`` applied T times."""
    torch.manual_seed(3)
    layer = NMNLayer(6, 8, addressed=True, write_on_fire=True).double()
    u = torch.randn(12, 3, 6, dtype=torch.double, requires_grad=True)
    state = torch.rand(3, 8, layer.state_dim, dtype=torch.double, requires_grad=True)
    starts = torch.zeros(12, 3, dtype=torch.double)
    starts[5, 1] = starts[9, 0] = 1.0
    y, last = layer(u, state, starts)
    ys, m = [], state
    for t in range(12):
        y_t, m = layer.step(u[t], m, starts[t])
        ys.append(y_t)
    torch.testing.assert_close(y, torch.stack(ys), rtol=0, atol=1e-12)
    torch.testing.assert_close(last, m, rtol=0, atol=1e-12)
    # the memory carries gradients: the last state depends on env 2's first input (no reset)
    (through,) = torch.autograd.grad(last.sum(), u, retain_graph=True)
    assert through[0, 2].abs().sum() > 0 and through[0, 0].abs().sum() == 0  # env 0 reset at 9
    wy, wm = torch.randn_like(y), torch.randn_like(last)
    inputs = [u, state, *layer.parameters()]
    got = torch.autograd.grad((y * wy).sum() + (last * wm).sum(), inputs)
    ref = torch.autograd.grad((torch.stack(ys) * wy).sum() + (m * wm).sum(), inputs)
    for g, r in zip(got, ref, strict=True):
        torch.testing.assert_close(g, r, rtol=1e-10, atol=1e-12)


def test_eval_decay_schedule_and_floor():
    layer = _identity_layer(write="external", gamma=0.5, gamma_eval=1.0)
    u = _logit([0.9, 0.9, 0.9]).expand(4, 1, 3)
    _, m_train = layer(u)
    layer.eval()
    _, m_eval = layer(u)
    # training: 0.5^3 + 0.5^2 + 0.5 + 1 of u; eval (retained): 4 u
    torch.testing.assert_close(m_train[0, 0], 1.875 * u[0, 0])
    torch.testing.assert_close(m_eval[0, 0], 4 * u[0, 0])
    floored = _identity_layer(write="external", gamma=0.5, floor=0.2)
    _, s = floored(u)
    assert s.shape == (1, 3, 6)
    torch.testing.assert_close(floored.read(s)[0, 0], (0.2 * 4 + 0.8 * 1.875) * u[0, 0])


@pytest.mark.parametrize("kwargs", [{}, {"write": "external"}, {"addressed": True}])
def test_gradients_reach_input_and_weights(kwargs):
    torch.manual_seed(2)
    layer = NMNLayer(3, 4, tau=1, **kwargs)
    u = torch.randn(6, 2, 3, requires_grad=True)
    y, _ = layer(u)
    y.pow(2).sum().backward()
    assert u.grad is not None and u.grad.abs().sum() > 0
    assert layer.linear.weight.grad.abs().sum() > 0
    if kwargs.get("addressed"):  # the write itself is differentiable: earlier inputs matter
        u2 = torch.randn(6, 2, 3, requires_grad=True)
        y2, _ = layer(u2)
        (y2[-1] * torch.randn_like(y2[-1])).sum().backward()
        assert u2.grad[0].abs().sum() > 0


@pytest.mark.parametrize("kwargs, match", [
    ({"tau": 4}, "tau must be in"),
    ({"tau": -1}, "tau must be in"),
    ({"gamma": 0.0}, r"gamma must be in \(0, 1\]"),
    ({"gamma": 1.5}, r"gamma must be in \(0, 1\]"),
    ({"gamma_eval": -0.1}, r"gamma_eval must be in \(0, 1\]"),
    ({"floor": 1.0}, r"floor must be in \[0, 1\)"),
    ({"write": "nearest"}, "write must be one of"),
    ({"write": "external", "addressed": True}, "addressed=True"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        NMNLayer(3, 4, **kwargs)


def test_bad_shapes():
    layer = NMNLayer(3, 4)
    with pytest.raises(ValueError, match="u must have shape"):
        layer(torch.zeros(5, 3))
    with pytest.raises(ValueError, match="u must have shape"):
        layer(torch.zeros(0, 2, 3))
    with pytest.raises(ValueError, match="u_t must have shape"):
        layer.step(torch.zeros(2, 4))
    with pytest.raises(ValueError, match="episode_starts must have shape"):
        layer(torch.zeros(5, 2, 3), None, torch.zeros(5, 3))
