"""Every registered id: gymnasium's and SB3's env checkers, seeding, the VecEnv contract."""

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from memagent.envs import ENVS, make_vec

import memagent  # noqa: F401

IDS = list(ENVS)
MODES = ["symbolic", "pixels"]


@pytest.mark.parametrize("obs_mode", MODES)
@pytest.mark.parametrize("env_id", IDS)
def test_checkers(env_id, obs_mode):
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    env = gym.make(env_id, obs_mode=obs_mode, render_mode="rgb_array")
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # no checker warnings either
        gym_check_env(env.unwrapped)
        sb3_check_env(gym.make(env_id, obs_mode=obs_mode), warn=True)
    if obs_mode == "pixels":
        assert env.observation_space.dtype == np.uint8
        assert env.observation_space.shape == (64, 64, 3)
    else:  # categories, which SB3 one-hot encodes (a Box of ids would reach it as magnitudes)
        assert isinstance(env.observation_space, gym.spaces.MultiDiscrete)
        obs, _ = env.reset(seed=0)
        assert env.observation_space.contains(obs)


def _rollout_gym(env_id, seed, steps=60, **kw):
    env = gym.make(env_id, **kw)
    env.action_space.seed(seed)
    obs, _ = env.reset(seed=seed)
    out = [obs]
    for _ in range(steps):
        obs, r, term, trunc, _ = env.step(env.action_space.sample())
        out += [obs, np.array([r, term, trunc])]
        if term or trunc:
            obs, _ = env.reset()
            out.append(obs)
    return out


def _rollout_vec(env_id, seed, n=8, steps=60, **kw):
    venv = make_vec(env_id, n, seed=seed, **kw)
    rng = np.random.default_rng(seed)
    out = [venv.reset()]
    for _ in range(steps):
        obs, r, d, _ = venv.step(rng.integers(0, venv.action_space.n, n))
        out += [obs, r, d]
    return out


@pytest.mark.parametrize("env_id", IDS)
def test_same_seed_same_trajectory(env_id):
    for rollout in (_rollout_gym, _rollout_vec):
        a, b, c = rollout(env_id, 7), rollout(env_id, 7), rollout(env_id, 8)
        assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
        assert not all(np.array_equal(x, y) for x, y in zip(a, c, strict=False))


def test_vec_autoreset_and_terminal_observation():
    venv = make_vec("memagent/TMaze-v0", 3, seed=0, length=2, step_penalty=0.0)
    obs = venv.reset()
    assert (obs[:, 3] >= 5).all()                         # every first obs shows the cue
    venv.step(np.array([1, 1, 3]))                        # envs 0, 1 reach the junction
    obs, rew, dones, infos = venv.step(np.array([0, 2, 3]))   # both choose; env 2 idles
    assert dones.tolist() == [True, True, False]
    for i in (0, 1):
        term = infos[i]["terminal_observation"]
        assert term[4] == 13 + i and term[-1] == [0, 2][i]  # in door i, heading up / down
        assert obs[i][3] >= 5 and obs[i][4] == 0          # the new episode's first obs: the cue again
        assert infos[i]["TimeLimit.truncated"] is False
        assert infos[i]["episode"]["l"] == 2
        assert infos[i]["is_success"] == (rew[i] == 1.0)
        assert infos[i]["episode"]["r"] == pytest.approx(rew[i])
    assert "terminal_observation" not in infos[2]


def test_vec_time_limit_truncates():
    venv = make_vec("memagent/TMaze-v0", 2, seed=0, max_episode_steps=4)
    venv.reset()
    for _ in range(3):
        _, _, dones, _ = venv.step(np.array([3, 3]))
        assert not dones.any()
    obs, _, dones, infos = venv.step(np.array([3, 3]))
    assert dones.all() and infos[0]["TimeLimit.truncated"] is True
    assert infos[0]["is_success"] is False and infos[0]["episode"]["l"] == 4


def test_vec_trains_with_sb3_and_logs_success():
    from stable_baselines3 import PPO
    from stable_baselines3.common.monitor import Monitor

    venv = make_vec("memagent/TMaze-v0", 8, seed=0)
    model = PPO("MlpPolicy", venv, n_steps=32, batch_size=64, n_epochs=1, seed=0, device="cpu")
    model.learn(512)
    assert len(model.ep_info_buffer) > 0 and len(model.ep_success_buffer) > 0
    assert venv.env_is_wrapped(Monitor) == [True] * 8


def test_envs_import_without_torch():
    import subprocess
    import sys

    code = ("import sys, gymnasium as gym, memagent\n"
            "env = gym.make('memagent/KeyDoor-v0', obs_mode='pixels'); env.reset(seed=0); env.step(1)\n"
            "from memagent.envs import make_engine; make_engine('memagent/Screens-v0', 4).observe()\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_make_vec_time_limit_follows_the_arguments():
    assert make_vec("memagent/TMaze-v0", 2).max_episode_steps == 30
    assert make_vec("memagent/TMaze-v0", 2, length=50).max_episode_steps == 110
    assert make_vec("memagent/TMaze-v0", 2, max_episode_steps=7).max_episode_steps == 7


def test_vec_observations_are_never_overwritten_while_referenced():
    venv = make_vec("memagent/TMaze-v0", 16, seed=0, obs_mode="pixels")
    rng = np.random.default_rng(0)
    kept = [venv.reset()]
    copies = [kept[0].copy()]
    views = []
    for step in range(12):
        obs, *_ = venv.step(rng.integers(0, 4, 16))
        if step % 3 == 0:
            kept.append(obs)
            copies.append(obs.copy())
        elif step % 3 == 1:
            views.append((obs[2:5], obs[2:5].copy()))    # only a view survives
    assert all(np.array_equal(a, b) for a, b in zip(kept, copies, strict=True))
    assert all(np.array_equal(v, c) for v, c in views)
    assert len({id(a) for a in kept}) == len(kept)


@pytest.mark.parametrize("view_size", [5, 7])
def test_larger_views(view_size):
    for env_id in ("memagent/TMaze-v0", "memagent/KeyDoor-v0"):
        for mode in MODES:
            env = gym.make(env_id, obs_mode=mode, view_size=view_size)
            gym_check_env(env.unwrapped)
            obs, _ = env.reset(seed=0)
            assert obs in env.observation_space
    obs, _ = gym.make("memagent/TMaze-v0", view_size=view_size).reset(seed=0)
    c = view_size * view_size // 2
    assert obs.shape == (view_size * view_size + 1,) and 5 <= obs[c - 1] < 7   # the cue, west
