"""Memory for any SB3 algorithm: the ObservationHistory wrapper and the HopfieldExtractor."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3 import A2C, DQN, PPO
from stable_baselines3.common.utils import check_for_correct_spaces
from stable_baselines3.common.vec_env import DummyVecEnv, VecCheckNan

from memagent.evaluation import success_rate
from memagent.history import HopfieldExtractor, ObservationHistory, with_memory


class Counter(gym.Env):
    """Observation ``[t + 1, 7]`` at step ``t`` of an episode of ``length`` steps."""

    observation_space = spaces.Box(0, 255, shape=(2,), dtype=np.uint8)
    action_space = spaces.Discrete(2)

    def __init__(self, length: int, truncate: bool = False):
        self.length, self.truncate, self.t = length, truncate, 0

    def _obs(self):
        return np.array([self.t + 1, 7], dtype=np.uint8)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        self.t += 1
        end = self.t >= self.length
        return self._obs(), 1.0, end and not self.truncate, end and self.truncate, {}


def counter_venv(lengths=(3, 5), truncate=False):
    return DummyVecEnv([lambda n=n: Counter(n, truncate) for n in lengths])


def test_window_contents_and_padding():
    venv = ObservationHistory(counter_venv(), window=4)
    assert venv.observation_space.shape == (4, 3)
    assert venv.observation_space.dtype == np.uint8
    obs = venv.reset()
    # (n_envs, window, obs_dim + 1): three padding rows, then the first observation.
    assert obs.shape == (2, 4, 3)
    np.testing.assert_array_equal(obs[0], [[0, 0, 0], [0, 0, 0], [0, 0, 0], [1, 7, 1]])
    for _ in range(3):
        obs, _, dones, _ = venv.step(np.zeros(2, dtype=np.int64))
    # env 1 (length 5) is at t=3: rows are t+1 = 1..4, all valid, oldest first.
    np.testing.assert_array_equal(obs[1], [[1, 7, 1], [2, 7, 1], [3, 7, 1], [4, 7, 1]])
    assert venv.observation_space.contains(obs[1])
    assert venv.episode_steps[1] == 3


@pytest.mark.parametrize("truncate", [False, True])
def test_reset_at_episode_end_and_terminal_observation(truncate):
    venv = ObservationHistory(counter_venv(truncate=truncate), window=4)
    venv.reset()
    for _ in range(2):
        venv.step(np.zeros(2, dtype=np.int64))
    obs, _, dones, infos = venv.step(np.zeros(2, dtype=np.int64))
    # env 0 (length 3) ended: the returned history is the new episode's first observation only.
    assert dones.tolist() == [True, False]
    np.testing.assert_array_equal(obs[0], [[0, 0, 0], [0, 0, 0], [0, 0, 0], [1, 7, 1]])
    assert venv.episode_steps.tolist() == [0, 3]
    # ... and the terminal observation is the stacked history of the episode that ended.
    terminal = infos[0]["terminal_observation"]
    np.testing.assert_array_equal(terminal, [[1, 7, 1], [2, 7, 1], [3, 7, 1], [4, 7, 1]])
    assert terminal.dtype == np.uint8 and "terminal_observation" not in infos[1]
    # Nothing of the old episode leaks into the new one as the window slides on.
    obs, *_ = venv.step(np.zeros(2, dtype=np.int64))
    np.testing.assert_array_equal(obs[0], [[0, 0, 0], [0, 0, 0], [1, 7, 1], [2, 7, 1]])


def test_window_one_is_the_current_observation():
    venv = ObservationHistory(counter_venv(), window=1)
    venv.reset()
    obs, *_ = venv.step(np.zeros(2, dtype=np.int64))
    np.testing.assert_array_equal(obs[:, 0], [[2, 7, 1], [2, 7, 1]])


def test_sb3_accepts_the_wrapped_env():
    venv = VecCheckNan(ObservationHistory(counter_venv(), window=4), raise_exception=True)
    check_for_correct_spaces(venv, venv.observation_space, venv.action_space)
    obs = venv.reset()
    for _ in range(12):
        obs, _, _, infos = venv.step(np.array([venv.action_space.sample() for _ in range(2)]))
        assert all(venv.observation_space.contains(o) for o in obs)
        for info in infos:
            if "terminal_observation" in info:
                assert venv.observation_space.contains(info["terminal_observation"])
    # Off-the-shelf algorithms take it, with SB3's MlpPolicy or with the Hopfield extractor.
    venv, policy_kwargs = with_memory(counter_venv(), window=4, embed_dim=8, hidden_dim=8)
    for algo, kw in [
        (PPO, dict(n_steps=8, batch_size=8)),
        (A2C, dict(n_steps=4)),
        (DQN, dict(learning_starts=4, buffer_size=64, batch_size=4, train_freq=2)),
    ]:
        algo("MlpPolicy", venv, policy_kwargs=policy_kwargs, seed=0, **kw).learn(16)
    PPO("MlpPolicy", venv, n_steps=8, batch_size=8, seed=0).learn(16)


def test_bad_inputs_raise_value_errors():
    with pytest.raises(ValueError, match="window"):
        ObservationHistory(counter_venv(), window=0)
    image = DummyVecEnv([lambda: gym.make("CartPole-v1")])
    image.observation_space = spaces.Box(0, 255, (8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match="1-D Box"):
        ObservationHistory(image)
    with pytest.raises(ValueError, match="ObservationHistory"):
        HopfieldExtractor(spaces.Box(0, 1, (4,)))
    with pytest.raises(ValueError, match="categorical"):
        HopfieldExtractor(_space("float32"), categorical=True)


def _space(dtype, window=5, obs_dim=3):
    if dtype == "uint8":  # symbolic: codes 0..9, embedded as categories
        return spaces.Box(0, 9, (window, obs_dim + 1), np.uint8)
    return spaces.Box(-10, 10, (window, obs_dim + 1), np.float32)


def _rows(dtype, *shape):
    """Observation rows as SB3 hands them to the extractor (float tensors)."""
    return th.randint(0, 10, shape).float() if dtype == "uint8" else th.randn(*shape)


def _batch(dtype, b=6, window=5, obs_dim=3, n_valid=(5, 3, 1, 2, 4, 5)):
    x = _rows(dtype, b, window, obs_dim + 1)
    x[..., -1] = 0
    for i, n in enumerate(n_valid):
        x[i, window - n :, -1] = 1
    return x


@pytest.mark.parametrize("dtype", ["float32", "uint8"])
def test_extractor_shapes_and_gradient(dtype):
    th.manual_seed(0)
    ext = HopfieldExtractor(_space(dtype), embed_dim=8, hidden_dim=16)
    assert (ext.n_codes is not None) == (dtype == "uint8")
    obs = _batch(dtype)
    features = ext(obs)
    assert features.shape == (6, 16) and ext.features_dim == 16
    features.square().sum().backward()
    for name, p in ext.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("dtype", ["float32", "uint8"])
def test_padding_is_never_attended(dtype):
    th.manual_seed(0)
    ext = HopfieldExtractor(_space(dtype), embed_dim=8, hidden_dim=16)
    obs = _batch(dtype)
    features, weights = ext(obs, return_weights=True)
    valid = obs[..., -1] > 0.5
    assert weights.shape == (6, 5)
    assert th.all(weights[~valid] == 0)
    th.testing.assert_close(weights.sum(-1), th.ones(6))
    # Whatever the padding rows hold, the features do not change.
    scrambled = obs.clone()
    scrambled[~valid] = _rows(dtype, int((~valid).sum()), 4) * 7
    scrambled[~valid, -1] = 0
    th.testing.assert_close(ext(scrambled), features)
    # ... while a valid past row does change them.
    changed = obs.clone()
    changed[0, 0, :-1] = (changed[0, 0, :-1] + 5) % 10
    assert not th.allclose(ext(changed)[0], features[0])


@pytest.mark.slow
def test_dqn_with_memory_solves_tmaze():
    """Plain SB3 DQN + ObservationHistory + HopfieldExtractor beats chance (50%) on TMaze-v0."""
    from memagent.envs import make_vec

    venv, policy_kwargs = with_memory(
        make_vec("memagent/TMaze-v0", 4, seed=0), window=16, embed_dim=32, hidden_dim=32
    )
    model = DQN(
        "MlpPolicy",
        venv,
        policy_kwargs=dict(policy_kwargs, net_arch=[64]),
        learning_rate=1e-3,
        buffer_size=20_000,
        learning_starts=1_000,
        batch_size=64,
        gamma=0.9,  # a short horizon: free moves at the junction loop; 0.99 over-estimates them
        train_freq=4,
        target_update_interval=500,
        exploration_fraction=0.3,
        exploration_final_eps=0.05,
        seed=0,
    )
    model.learn(12_000)
    eval_venv, _ = with_memory(make_vec("memagent/TMaze-v0", 8, seed=1000), window=16)
    assert success_rate(model, eval_venv, 100) >= 0.8
