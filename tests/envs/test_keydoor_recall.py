"""KeyDoor and RecallSequence: the rules, and that they need memory."""

import gymnasium as gym
import numpy as np
import pytest
from memagent.envs.core import CUE0, DISTRACTOR0, DOOR0, GATE, JUNCTION, KEY0, MAX_COLOURS
from memagent.envs.scripted import KeyDoorScript, RecallScript

import memagent  # noqa: F401

from .helpers import success_rate


def test_keydoor_layout_varies_per_episode():
    env = gym.make("memagent/KeyDoor-v0")
    obs, _ = env.reset(seed=0)
    assert KEY0 <= obs[1] < KEY0 + 3                      # the key, north of the agent
    eng = env.unwrapped.engine
    doors, balls = set(), 0
    for seed in range(20):
        env.reset(seed=seed)
        doors.add(tuple(eng.doors[0]))
        region = eng.region[0]
        balls += ((region >= DISTRACTOR0) & (region < DISTRACTOR0 + MAX_COLOURS)).sum()
        assert sorted(eng.doors[0]) == [DOOR0, DOOR0 + 1, DOOR0 + 2]
    assert len(doors) > 3 and 0.15 < balls / (20 * eng.region[0].size) < 0.45


def test_recall_gate_and_order():
    env = gym.make("memagent/RecallSequence-v0", n_items=2, delay=0, step_penalty=0.0)
    obs, _ = env.reset(seed=1)
    items = env.unwrapped.engine.items[0].tolist()
    assert obs[1] == CUE0 + items[0]
    for _ in range(3):
        obs, *_ = env.step(1)                             # to the first junction (column 4)
    assert obs[4] == JUNCTION and obs[5] == GATE
    obs, r, term, _, info = env.step(0 if items[0] == 0 else 2)
    assert r == pytest.approx(0.5) and not term and obs[4] == JUNCTION and obs[3] == GATE
    obs, r, term, _, info = env.step(2 if items[1] == 0 else 0)          # the wrong door
    assert term and r == 0.0 and not info["is_success"]


@pytest.mark.parametrize(("env_id", "script", "chance"), [
    ("memagent/KeyDoor-v0", KeyDoorScript, 1 / 3),
    ("memagent/RecallSequence-v0", RecallScript, 1 / 8),
])
def test_memory_is_needed(env_id, script, chance):
    assert success_rate(env_id, script(500), n_envs=500, episodes=1000) == 1.0
    rate = success_rate(env_id, script(2000, use_cue=False, seed=99), n_envs=2000, episodes=4000)
    assert abs(rate - chance) < 0.03


def test_keydoor_more_colours():
    assert success_rate("memagent/KeyDoor-v0", KeyDoorScript(300, n_colours=6), n_envs=300,
                        episodes=600, n_colours=6, delay=4) == 1.0


def test_recall_scores_partial_credit_per_item():
    from memagent.envs import make_vec

    venv = make_vec("memagent/RecallSequence-v0", 64, seed=0, step_penalty=0.0)
    policy = RecallScript(64, use_cue=False, seed=0)
    obs, starts, returns = venv.reset(), np.ones(64, bool), []
    for _ in range(200):
        obs, _, dones, infos = venv.step(policy(obs, starts))
        starts = dones
        returns += [infos[i]["episode"]["r"] for i in np.flatnonzero(dones)]
    assert set(np.round(returns, 4)) <= {0.0, 0.3333, 0.6667, 1.0} and len(set(returns)) >= 3
