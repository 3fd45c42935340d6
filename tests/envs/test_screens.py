"""Screens-v0 (MAN §4.2): state ids, the goal, screens that vary within a state yet identify it."""

import gymnasium as gym
import numpy as np
import pytest
from memagent.envs import make_engine, make_vec

import memagent  # noqa: F401

LEFT, RIGHT, FORWARD = 0, 1, 2


def test_state_ids_and_shortest_path():
    env = gym.make("memagent/Screens-v0")
    u = env.unwrapped
    assert (u.n_positions, u.n_directions, u.n_states) == (12, 4, 48)
    obs, info = env.reset(seed=0)
    assert obs.shape == (64, 64, 3) and info["state_id"] == 1 * 12 + 0      # east, top-left
    path = [FORWARD, FORWARD, FORWARD, RIGHT, FORWARD, FORWARD]             # along the top, then down
    expected = [13, 14, 15, 27, 31, 35]                                     # state_id = d * 12 + p
    for action, sid in zip(path, expected, strict=True):
        obs, reward, term, trunc, info = env.step(action)
        assert info["state_id"] == sid
    assert term and reward == 1.0 and info["is_success"]


def test_walls_and_turns():
    env = gym.make("memagent/Screens-v0")
    env.reset(seed=0)
    _, _, _, _, info = env.step(LEFT)                # east -> north
    assert info["state_id"] == 0 * 12 + 0
    _, _, _, _, info = env.step(FORWARD)             # wall: stays
    assert info["state_id"] == 0
    _, _, _, _, info = env.step(LEFT)                # north -> west
    assert info["state_id"] == 3 * 12 + 0


def test_vec_infos_carry_state_id():
    venv = make_vec("memagent/Screens-v0", 4, seed=0, random_start=True)
    venv.reset()
    assert all("state_id" in i for i in venv.reset_infos)
    _, _, _, infos = venv.step(np.full(4, FORWARD))
    assert all(0 <= i["state_id"] < 48 for i in infos)


def _red(im):
    return (im[..., 0] > 170) & (im[..., 1] < 90) & (im[..., 2] < 90)


def test_screens_vary_within_a_state_but_identify_it():
    eng = make_engine("memagent/Screens-v0", 1, seed=0)
    rng = np.random.default_rng(0)
    states = np.repeat(np.arange(eng.n_states), 10)
    screens = eng.screens(states, rng)
    same = screens[states == 5]
    assert len({s.tobytes() for s in same}) == len(same)                 # no two screens alike
    assert np.abs(same[0].astype(int) - same[1]).mean() > 2
    # a template matcher on the agent's red pixels, over all shifts, recovers every state
    k = eng.shift
    canon = np.stack([_red(np.pad(eng.canonical_screen(s), ((k, k), (k, k), (0, 0))))
                      for s in range(eng.n_states)])
    n = 2 * k + 1
    templates = np.stack([canon[:, dy:dy + 64, dx:dx + 64] for dy in range(n) for dx in range(n)], 1)
    templates = templates.reshape(eng.n_states * n * n, -1).astype(np.float32)
    score = _red(screens).reshape(len(states), -1).astype(np.float32) @ templates.T
    score -= 0.5 * templates.sum(1)
    assert ((score.argmax(1) // (n * n)) == states).mean() == 1.0


def test_canonical_screen_shows_agent_in_its_cell():
    eng = make_engine("memagent/Screens-v0", 1)
    ts, (oy, ox) = eng.tile_px, eng.origin
    for sid in (0, 13, 47):
        d, p = divmod(sid, eng.n_positions)
        r, c = divmod(p, eng.width)
        cell = eng.canonical_screen(sid)[oy + (r + 1) * ts:oy + (r + 2) * ts, ox + (c + 1) * ts:ox + (c + 2) * ts]
        assert _red(cell).sum() > ts * ts // 5
    with pytest.raises(ValueError, match="state_id"):
        eng.canonical_screen(48)


def test_vec_terminal_state_and_reset_infos():
    venv = make_vec("memagent/Screens-v0", 3, seed=0)
    venv.reset()
    path = [FORWARD, FORWARD, FORWARD, RIGHT, FORWARD, FORWARD]
    for action in path:
        obs, rewards, dones, infos = venv.step(np.full(3, action))
    assert dones.all() and (rewards == 1).all()
    assert all(i["state_id"] == 2 * 12 + 11 and i["is_success"] for i in infos)   # the goal, facing south
    assert [r["state_id"] for r in venv.reset_infos] == [12, 12, 12]               # the next episode's start
