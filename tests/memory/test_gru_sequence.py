"""The GRU core's hand-written CPU sequence kernel against torch's own GRU."""

import torch
from torch import nn

from memagent.memory.recurrent import GRUCore, _GRUSequence


def test_gru_sequence_matches_torch_gru_outputs_and_gradients():
    torch.manual_seed(0)
    gru = nn.GRU(5, 7).double()
    x = torch.randn(9, 3, 5, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(1, 3, 7, dtype=torch.float64, requires_grad=True)
    params = [gru.weight_ih_l0, gru.weight_hh_l0, gru.bias_ih_l0, gru.bias_hh_l0]
    ours = _GRUSequence.apply(x, h0[0], *params)
    theirs, h_n = gru(x, h0)
    torch.testing.assert_close(ours, theirs)
    torch.testing.assert_close(ours[-1:], h_n)
    g = torch.randn_like(theirs)
    ga = torch.autograd.grad((ours * g).sum(), [x, h0, *params])
    gb = torch.autograd.grad((theirs * g).sum(), [x, h0, *params])
    for a, b in zip(ga, gb, strict=True):
        torch.testing.assert_close(a, b)
    assert torch.autograd.gradcheck(lambda *a: _GRUSequence.apply(*a),
                                     (x[:4], h0[0].detach().requires_grad_(), *params))


def test_gru_core_uses_the_kernel_and_keeps_resets(monkeypatch):
    calls = []
    apply = _GRUSequence.apply
    monkeypatch.setattr(_GRUSequence, "apply", lambda *a: calls.append(a[0].shape) or apply(*a))
    torch.manual_seed(1)
    core = GRUCore(4, hidden_size=6)
    x = torch.randn(12, 3, 4, requires_grad=True)
    starts = torch.zeros(12, 3)
    starts[0, :] = 1
    starts[5, 1] = 1  # env 1 starts a new episode at step 5
    y, (h,) = core(x, core.initial_state(3), starts)
    assert calls == [(12, 4, 4)]  # one padded call: 4 segments (env 1 split in two)
    # step by step with torch's own GRU cell maths (T = 1 calls take torch's path)
    state, ys = core.initial_state(3), []
    for t in range(12):
        out, state = core(x[t:t + 1], state, starts[t:t + 1])
        ys.append(out)
    torch.testing.assert_close(y, torch.cat(ys), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(h, state[0], atol=1e-6, rtol=1e-5)
    y.sum().backward()
    assert x.grad is not None and x.grad[:5, 1].abs().sum() > 0
    # nothing after env 1's reset depends on its steps before it
    x2 = x.detach().clone()
    x2[:5, 1] += 1.0
    y2, _ = core(x2, core.initial_state(3), starts)
    torch.testing.assert_close(y2[5:, 1], y[5:, 1].detach())
    assert not torch.allclose(y2[:5, 1], y[:5, 1].detach())
