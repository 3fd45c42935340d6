"""memagent/CartPoleNoVel-v1: CartPole-v1's observation without the velocities, registered,
listed by `memagent envs`, passing gymnasium's and SB3's checkers, trainable by MemoryPPO."""

import warnings

import gymnasium as gym
import numpy as np
from gymnasium.utils.env_checker import check_env as gym_check_env
from memagent.agents.memory_ppo import MemoryPPO
from memagent.envs.cartpole import CartPoleNoVelEnv
from stable_baselines3.common.env_checker import check_env as sb3_check_env
from stable_baselines3.common.env_util import make_vec_env

import memagent  # noqa: F401  (registers the ids)
from memagent.cli import main

ENV = "memagent/CartPoleNoVel-v1"


def test_observation_is_cartpole_without_velocities():
    env, full = gym.make(ENV), gym.make("CartPole-v1")
    assert env.observation_space.shape == (2,) and env.spec.max_episode_steps == 500
    np.testing.assert_array_equal(env.observation_space.high, full.observation_space.high[[0, 2]])
    obs, _ = env.reset(seed=3)
    ref, _ = full.reset(seed=3)
    np.testing.assert_array_equal(obs, ref[[0, 2]])
    rng = np.random.default_rng(0)
    for _ in range(30):
        action = int(rng.integers(2))
        obs, r, term, trunc, _ = env.step(action)
        ref, r_ref, term_ref, trunc_ref, _ = full.step(action)
        np.testing.assert_array_equal(obs, ref[[0, 2]])
        assert (r, term, trunc) == (r_ref, term_ref, trunc_ref)
        if term:
            break
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no checker warnings, but that it checks a wrapper
        warnings.filterwarnings("ignore", message=".*different from the unwrapped version")
        made = gym.make(ENV)
        while not isinstance(made, CartPoleNoVelEnv):  # below gym.make's TimeLimit and checkers
            made = made.env
        gym_check_env(made)
        sb3_check_env(gym.make(ENV), warn=True)
    env = gym.make(ENV, render_mode="rgb_array")
    env.reset(seed=0)
    assert env.render().shape == (400, 600, 3)  # CartPole's own drawing


def test_listed_and_described_by_memagent_envs(capsys):
    assert main(["envs"]) == 0
    listing = capsys.readouterr().out
    assert ENV in listing and "velocities hidden" in listing and "time limit 500" in listing
    assert main(["envs", "CartPoleNoVel-v1"]) == 0
    doc = capsys.readouterr().out
    assert "## Observation" in doc and "[x, theta]" in doc


def test_memory_ppo_trains_on_it():
    model = MemoryPPO("MlpPolicy", make_vec_env(ENV, 2, seed=0), n_steps=16, batch_size=32,
                      n_epochs=1, policy_kwargs=dict(memory="gru"), seed=0, device="cpu")
    model.learn(64)
    actions, _ = model.predict(np.zeros((2, 2), dtype=np.float32), episode_start=np.ones(2))
    assert actions.shape == (2,)
