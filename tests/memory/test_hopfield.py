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


# ---------------------------------------------------------------------------------- models


def _flip(x, frac, g):
    flips = torch.rand(x.shape, generator=g) < frac
    return torch.where(flips, -x, x)


def _bipolar_patterns(n, d, g):
    return torch.randint(0, 2, (n, d), generator=g).float() * 2 - 1


def test_classical_hopfield_recovers_from_flipped_bits():
    g = torch.Generator().manual_seed(7)
    patterns = _bipolar_patterns(6, 120, g)  # 6 << 0.138 * 120
    net = H.ClassicalHopfield(120).store(patterns)
    out = net.recall(_flip(patterns, 0.1, g), generator=g)
    assert torch.equal(out, patterns)
    # Its synchronous update is the UHN instance: dot similarity, identity separation, sign.
    q = _flip(patterns, 0.1, g)
    uhn = torch.sign(retrieve(q, patterns, similarity="dot", separation="identity", normalize=False))
    assert (uhn == net.step(q)).float().mean() > 0.97  # differs only by the zeroed diagonal


def test_sdm_recovers_from_flipped_bits():
    g = torch.Generator().manual_seed(8)
    patterns = _bipolar_patterns(10, 256, g)
    sdm = H.SparseDistributedMemory(256, n_locations=2000, p_activate=0.05, seed=0).write(patterns)
    assert (sdm.read(_flip(patterns, 0.1, g), iterations=3) == patterns).float().mean() > 0.99


def test_dam_stores_beyond_classical_capacity():
    g = torch.Generator().manual_seed(9)
    patterns = _bipolar_patterns(30, 64, g)  # 30 > 0.138 * 64: too many for the classical net
    dam = H.DenseAssociativeMemory(64, 30, n=3, rectified=False)
    with torch.no_grad():
        dam.memories.copy_(patterns)
    probes = _flip(patterns, 0.1, g)
    assert (dam.relax(probes, generator=g) == patterns).all(1).float().mean() > 0.9
    classical = H.ClassicalHopfield(64).store(patterns)
    assert (classical.recall(probes, generator=g) == patterns).all(1).float().mean() < 0.5


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_energies_never_increase(seed):
    g = torch.Generator().manual_seed(seed)
    patterns = _bipolar_patterns(15, 40, g)  # above classical capacity: real dynamics
    probes = _bipolar_patterns(8, 40, g)
    _, e = H.ClassicalHopfield(40).store(patterns).recall(probes, generator=g, return_energies=True)
    assert (e[1:] - e[:-1]).max() <= 1e-5
    for n, rectified in ((2, False), (3, True), (4, False)):
        dam = H.DenseAssociativeMemory(40, 15, n=n, rectified=rectified, seed=seed)
        _, e = dam.relax(probes, generator=g, return_energies=True)
        assert (e[1:] - e[:-1] <= 1e-5 * e.abs().max()).all()
    hop = H.ModernHopfield(torch.randn(20, 16, generator=g), beta=0.7)
    _, e = hop(torch.randn(8, 16, generator=g), steps=6, return_energies=True)
    assert (e[1:] - e[:-1]).max() <= 1e-5


def test_modern_hopfield_one_step_retrieval():
    g = torch.Generator().manual_seed(10)
    x = torch.randn(50, 64, generator=g)
    out = H.ModernHopfield(x, beta=2.0)(x + 0.3 * torch.randn(50, 64, generator=g))
    torch.testing.assert_close(out, x, atol=1e-3, rtol=0)


def test_universal_hopfield_matches_cdist_and_chunks():
    g = torch.Generator().manual_seed(11)
    k, q = torch.rand(300, 20, generator=g), torch.rand(70, 20, generator=g)
    mem = H.UniversalHopfield(k, chunk_size=16)
    assert torch.equal(mem(q), k[torch.cdist(q, k).argmin(-1)])
    soft = H.UniversalHopfield(k, similarity="manhattan", separation="softmax", beta=3.0, chunk_size=16)
    torch.testing.assert_close(soft(q), retrieve(q, k, similarity="manhattan", beta=3.0))
    with pytest.raises(ValueError, match=r"shape \(Q, 20\)"):
        mem(torch.rand(5, 21))
    with pytest.raises(ValueError, match="unknown separation"):
        H.UniversalHopfield(k, separation="argmax")


def test_dam_classifier_gradients_and_errors():
    dam = H.DenseAssociativeMemory(74, 20, n=5, n_labels=10)
    logits = dam.label_logits(torch.rand(4, 64) * 2 - 1)
    assert logits.shape == (4, 10)
    logits.logsumexp(-1).sum().backward()
    assert dam.memories.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="64"):
        dam.label_logits(torch.rand(4, 63))
    with pytest.raises(ValueError, match="n_labels"):
        H.DenseAssociativeMemory(64, 10).label_logits(torch.rand(2, 64))
    with pytest.raises(ValueError, match="order n"):
        H.DenseAssociativeMemory(64, 10, n=0)
    with pytest.raises(ValueError, match="beta"):
        H.ModernHopfield(torch.rand(3, 4), beta=0)
    with pytest.raises(ValueError, match=r"shape \(N, 8\)"):
        H.ClassicalHopfield(8).store(torch.ones(3, 9))


@pytest.mark.parametrize("sep", ["softmax", "max"])
def test_causal_sequence_attention_matches_per_step_loop(sep):
    """One masked call over (B, T, T) equals reading the prefix at every step (policy cores)."""
    g = torch.Generator().manual_seed(12)
    x = torch.randn(3, 6, 5, generator=g)  # (B, T, D)
    causal = torch.ones(6, 6, dtype=torch.bool).tril()
    out = retrieve(x, x, similarity="euclidean", separation=sep, beta=0.5, mask=causal)
    for t in range(6):
        step = retrieve(x[:, t:t + 1], x[:, : t + 1], similarity="euclidean", separation=sep, beta=0.5)
        torch.testing.assert_close(out[:, t:t + 1], step)
