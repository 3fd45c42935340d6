"""TMaze: rules, memory requirement, the registered variants."""

import gymnasium as gym
import pytest
from memagent.envs.core import CUE0, DOOR0, JUNCTION, WALL
from memagent.envs.scripted import TMazeScript

import memagent  # noqa: F401  (registers the ids)

from .helpers import success_rate


def test_cue_only_in_first_observation():
    env = gym.make("memagent/TMaze-v0")
    obs, _ = env.reset(seed=3)
    assert CUE0 <= obs[3] < CUE0 + 2          # west of the agent: the sign
    obs, *_ = env.step(3)                     # bump into the sign: nothing moves
    assert obs[3] == WALL


def test_walk_and_choose():
    env = gym.make("memagent/TMaze-v0", step_penalty=0.0)
    obs, _ = env.reset(seed=0)
    cue = int(obs[3]) - CUE0
    for _ in range(9):
        obs, r, term, trunc, info = env.step(1)
        assert r == 0 and not term
    assert obs[4] == JUNCTION and obs[1] == DOOR0 and obs[7] == DOOR0 + 1
    obs, r, term, trunc, info = env.step(0 if cue == 0 else 2)
    assert term and r == 1.0 and info["is_success"]


def test_shaping_and_penalty():
    env = gym.make("memagent/TMaze-v0", penalty=-1.0)
    obs, _ = env.reset(seed=0)
    _, r, *_ = env.step(0)                    # into the wall: no progress
    assert r == pytest.approx(-0.1)
    _, r, *_ = env.step(1)
    assert r == 0.0
    cue = int(obs[3]) - CUE0
    for _ in range(8):
        env.step(1)
    _, r, term, _, info = env.step(2 if cue == 0 else 0)   # the wrong door
    assert term and r == -1.0 and not info["is_success"]


@pytest.mark.parametrize("n_cues", [2, 3, 5])
def test_cue_policy_always_succeeds(n_cues):
    policy = TMazeScript(500, n_cues=n_cues, use_cue=True)
    assert success_rate("memagent/TMaze-v0", policy, n_envs=500, episodes=1000, n_cues=n_cues) == 1.0


@pytest.mark.parametrize("n_cues", [2, 4])
def test_cue_ignoring_policy_at_chance(n_cues):
    policy = TMazeScript(2000, n_cues=n_cues, use_cue=False, seed=1)
    rate = success_rate("memagent/TMaze-v0", policy, n_envs=2000, episodes=4000, n_cues=n_cues)
    assert abs(rate - 1 / n_cues) < 0.03


def test_random_length_varies_and_is_solvable():
    policy = TMazeScript(200)
    assert success_rate("memagent/TMaze-Random-v0", policy, n_envs=200, episodes=400) == 1.0
    env = gym.make("memagent/TMaze-Random-v0")
    lengths = set()
    for seed in range(30):
        env.reset(seed=seed)
        lengths.add(int(env.unwrapped.engine.length[0]))
    assert len(lengths) > 5 and min(lengths) >= 5 and max(lengths) <= 20


def test_long_maze_solvable():
    policy = TMazeScript(16)
    assert success_rate("memagent/TMaze-L1000-v0", policy, n_envs=16, episodes=16) == 1.0


def test_registered_time_limits_match_the_worlds():
    from memagent.envs import ENVS, make_engine

    for env_id, (_, _, max_steps, _) in ENVS.items():
        assert gym.spec(env_id).max_episode_steps == max_steps == make_engine(env_id, 1).max_steps


def test_no_free_loitering_at_the_junction():
    env = gym.make("memagent/TMaze-v0", length=3)
    env.reset(seed=0)
    env.step(1)
    _, r, *_ = env.step(1)                    # onto the junction: progress
    assert r == 0.0
    _, r, *_ = env.step(3)                    # back west from the junction: costs
    assert r == pytest.approx(-1 / 3)
