"""ScreenCNN: a conv with kernel = stride and a linear layer, raw uint8 scaled in its weights,
repeated screens computed once (exactly); the default extractor of MemoryPPO's CnnPolicy;
``memagent bench pixels`` compares it with NatureCNN in one run."""

import json

import numpy as np
import pytest
import torch
from gymnasium import spaces
from memagent.agents.memory_ppo import MemoryPPO
from memagent.envs import make_vec
from stable_baselines3 import PPO
from stable_baselines3.common.torch_layers import NatureCNN

from memagent import extractors
from memagent.extractors import ScreenCNN, distinct_rows

IMAGE = spaces.Box(0, 255, (3, 64, 64), np.uint8)


def _screens(n_distinct=5, n=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    distinct = torch.randint(0, 256, (n_distinct, 3, 64, 64), generator=g, dtype=torch.uint8)
    which = torch.randint(0, n_distinct, (n,), generator=g)
    which[:n_distinct] = torch.arange(n_distinct)  # every distinct screen appears
    return distinct[which], which


def test_distinct_rows_is_exact():
    x, which = _screens()
    index, inverse = distinct_rows(x)
    assert len(index) == 5
    assert torch.equal(x[index][inverse], x)
    assert torch.equal(which[index][inverse], which)  # same groups as the generator's
    assert distinct_rows(x[:5]) is None  # every row distinct: nothing to gain
    assert distinct_rows(torch.zeros(4, 3, dtype=torch.uint8)) is None  # rows of 3 bytes


def test_distinct_rows_never_merges_different_rows_on_a_hash_collision(monkeypatch):
    x, _ = _screens()
    words = x[0].numel() // 8
    monkeypatch.setitem(extractors._MULTIPLIERS, (words, x.device), torch.zeros(words, dtype=torch.long))
    assert distinct_rows(x) is None  # every hash is 0: the comparison finds the rows differ
    assert distinct_rows(x[[0, 0, 0]]) is not None  # equal rows still group


def test_screen_cnn_dedup_and_uint8_are_the_same_maths():
    x, _ = _screens(n=64)
    torch.manual_seed(0)
    net = ScreenCNN(IMAGE)
    plain = ScreenCNN(IMAGE, dedup=False)
    plain.load_state_dict(net.state_dict())
    out = net(x)  # 64 >= DEDUP_MIN screens of 5 kinds: computed 5 times
    ref = plain(x.float() / 255)  # SB3's preprocessing, every screen
    assert out.shape == (64, 128)
    torch.testing.assert_close(out, ref)
    out.square().sum().backward()
    ref.square().sum().backward()
    for a, b in zip(net.parameters(), plain.parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad, atol=1e-5, rtol=1e-4)


def test_screen_cnn_bad_spaces():
    with pytest.raises(ValueError, match="ScreenCNN reads images.*MlpPolicy"):
        ScreenCNN(spaces.Box(0, 1, (5,)))
    with pytest.raises(ValueError, match="at least 8 pixels wide, got 4 x 4"):
        ScreenCNN(spaces.Box(0, 255, (3, 4, 4), np.uint8))
    with pytest.raises(ValueError, match="features_dim, channels and patch must be >= 1"):
        ScreenCNN(IMAGE, features_dim=0)


def test_cnn_policy_uses_screen_cnn_and_keeps_nature_cnn():
    env = make_vec("memagent/TMaze-v0", 2, seed=0, obs_mode="pixels")
    model = MemoryPPO("CnnPolicy", env, n_steps=8, batch_size=16, n_epochs=1,
                      policy_kwargs=dict(memory="gru"), seed=0, device="cpu")
    assert isinstance(model.policy.features_extractor, ScreenCNN)
    model.learn(32)
    nature = MemoryPPO("CnnPolicy", env, n_steps=8, batch_size=16, n_epochs=1, seed=0, device="cpu",
                       policy_kwargs=dict(memory="gru", features_extractor_class=NatureCNN))
    assert isinstance(nature.policy.features_extractor, NatureCNN)
    # an SB3 extractor: SB3's own PPO trains with it (floats in [0, 1])
    PPO("CnnPolicy", env, n_steps=8, batch_size=16, n_epochs=1, device="cpu",
        policy_kwargs=dict(features_extractor_class=ScreenCNN)).learn(16)


def test_bench_pixels_smoke(tmp_path):
    from memagent.cli import main

    out = tmp_path / "pixels.json"
    assert main(["bench", "pixels", "--n-envs", "2", "--n-steps", "8", "--rollouts", "1",
                 "--repeats", "1", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert [r[1] for r in data["rows"]] == ["SB3 NatureCNN", "memagent ScreenCNN",
                                            "memagent ScreenCNN, dedup=False", "one-hot (MlpPolicy)"]
    assert data["rows"][0][-1] == 1.0 and all(r[4] > 0 for r in data["rows"])
    assert len(data["screen_vs_nature_per_round"]) == 1
    assert main(["bench", "pixels", "--core", "transformer"]) == 2
