"""The Universal Hopfield framework: retrieve(), its similarities and separations, the models."""

import pytest
import torch

from memagent.memory import hopfield as H
from memagent.memory.hopfield import SEPARATIONS, SIMILARITIES, retrieve


def _brute_nearest(q, k, sim):
    """Index of the nearest stored pattern for each query by an explicit loop."""
    out = []
    for qi in q:
        best, best_s = None, None
        for j, kj in enumerate(k):
            if sim == "dot":
                s = float(qi @ kj)
            elif sim == "cosine":
                s = float(qi @ kj / (qi.norm() * kj.norm()))
            elif sim in ("euclidean", "inv_euclidean"):
                s = -float(((qi - kj) ** 2).sum())
            else:
                s = -float((qi - kj).abs().sum())
            if best_s is None or s > best_s:
                best, best_s = j, s
        out.append(best)
    return torch.tensor(out)


@pytest.mark.parametrize("sim", list(SIMILARITIES))
def test_max_separation_is_nearest_pattern(sim):
    g = torch.Generator().manual_seed(1)
    k = torch.randn(40, 12, generator=g, dtype=torch.float64)
    q = torch.randn(25, 12, generator=g, dtype=torch.float64)
    idx = _brute_nearest(q, k, sim)
    out = retrieve(q, k, similarity=sim, separation="max")
    torch.testing.assert_close(out, k[idx])
    # The general path (weights returned) agrees with the fast gather path.
    out2, w = retrieve(q, k, similarity=sim, separation="max", return_weights=True)
    torch.testing.assert_close(out2, k[idx])
    assert torch.equal(w.argmax(-1), idx)
    # Heteroassociative projection reads the value stored with the nearest key.
    v = torch.arange(40, dtype=torch.float64)[:, None]
    assert torch.equal(retrieve(q, k, v, similarity=sim, separation="max")[:, 0].long(), idx)


@pytest.mark.parametrize("sim", ["dot", "euclidean", "manhattan"])
def test_softmax_tends_to_max(sim):
    g = torch.Generator().manual_seed(2)
    k, q = torch.randn(30, 8, generator=g), torch.randn(10, 8, generator=g)
    target = retrieve(q, k, similarity=sim, separation="max")
    errs = [(retrieve(q, k, similarity=sim, separation="softmax", beta=b) - target).abs().max()
            for b in (0.1, 1.0, 10.0, 1000.0)]
    assert errs[-1] < 1e-4
    assert errs[0] > errs[-1] + 0.1


def test_batched_over_leading_dims_matches_loop():
    g = torch.Generator().manual_seed(3)
    q, k, v = torch.randn(3, 5, 6, generator=g), torch.randn(3, 7, 6, generator=g), torch.randn(3, 7, 4, generator=g)
    for sep in SEPARATIONS:
        out = retrieve(q, k, v, similarity="euclidean", separation=sep, beta=2.0)
        assert out.shape == (3, 5, 4)
        for b in range(3):
            torch.testing.assert_close(out[b], retrieve(q[b], k[b], v[b], similarity="euclidean",
                                                        separation=sep, beta=2.0))


@pytest.mark.parametrize("sep", list(SEPARATIONS))
def test_mask_ignores_masked_patterns_and_empty_rows_are_zero(sep):
    g = torch.Generator().manual_seed(4)
    q, k = torch.randn(2, 6, 5, generator=g), torch.randn(2, 9, 5, generator=g)
    mask = torch.rand(2, 6, 9, generator=g) > 0.4
    mask[:, 0] = False  # a row with nothing to attend
    mask[:, 1] = True
    mask[:, 1, 3] = False
    sim = "inv_manhattan" if sep in ("identity", "polynomial") else "manhattan"
    out, w = retrieve(q, k, similarity=sim, separation=sep, mask=mask, return_weights=True)
    assert not torch.isnan(out).any()
    assert torch.all(w[~mask] == 0)
    assert torch.all(out[:, 0] == 0)
    # Changing a masked pattern does not change what row 1 reads.
    k2 = k.clone()
    k2[:, 3] += 100.0
    out2 = retrieve(q, k2, similarity=sim, separation=sep, mask=mask)
    torch.testing.assert_close(out2[:, 1], out[:, 1])


def test_gradients_flow_through_softmax_and_masks():
    g = torch.Generator().manual_seed(5)
    q = torch.randn(2, 4, 6, generator=g, requires_grad=True)
    k = torch.randn(2, 4, 6, generator=g, requires_grad=True)
    causal = torch.ones(4, 4, dtype=torch.bool).tril()
    causal[0, 0] = False  # a fully masked row must not poison the gradients
    for sim in ("dot", "cosine", "euclidean", "manhattan"):
        out = retrieve(q, k, similarity=sim, separation="softmax", beta=0.5, mask=causal)
        q.grad = k.grad = None
        out.sum().backward()
        assert torch.isfinite(q.grad).all() and torch.isfinite(k.grad).all()
        assert q.grad.abs().sum() > 0 and k.grad.abs().sum() > 0


def test_inverse_option_and_polynomial():
    g = torch.Generator().manual_seed(6)
    q, k = torch.rand(4, 6, generator=g), torch.rand(8, 6, generator=g)
    a = retrieve(q, k, similarity="euclidean", separation="identity", inverse=True)
    b = retrieve(q, k, similarity="inv_euclidean", separation="identity")
    torch.testing.assert_close(a, b)
    w = H.polynomial_separation(torch.tensor([[1.0, 2.0, -1.0]]), n=2)
    torch.testing.assert_close(w, torch.tensor([[1.0, 4.0, 1.0]]) / 6)
    w = H.polynomial_separation(torch.tensor([[1.0, 2.0, -1.0]]), n=3, rectified=True)
    torch.testing.assert_close(w, torch.tensor([[1.0, 8.0, 0.0]]) / 9)
    w = H.topk_separation(torch.tensor([[1.0, 3.0, 2.0, 0.0]]), k=2, beta=1000.0)
    torch.testing.assert_close(w, torch.tensor([[0.0, 1.0, 0.0, 0.0]]))


def test_bad_input_errors():
    q, k = torch.randn(3, 4), torch.randn(5, 6)
    with pytest.raises(ValueError, match="dimension D=4"):
        retrieve(q, k)
    k = torch.randn(5, 4)
    with pytest.raises(ValueError, match="beta"):
        retrieve(q, k, beta=0.0)
    with pytest.raises(ValueError, match="beta"):
        retrieve(q, k, beta=-1.0)
    with pytest.raises(ValueError, match="unknown similarity 'cosin'.*dot, cosine"):
        retrieve(q, k, similarity="cosin")
    with pytest.raises(ValueError, match="unknown separation 'soft'.*softmax"):
        retrieve(q, k, separation="soft")
    with pytest.raises(ValueError, match="values hold 2"):
        retrieve(q, k, torch.randn(2, 3))
    with pytest.raises(ValueError, match="inverse=True"):
        retrieve(q, k, similarity="dot", inverse=True)
    with pytest.raises(ValueError, match="bool"):
        retrieve(q, k, mask=torch.ones(3, 5))
