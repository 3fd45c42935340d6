"""Pixels show what the symbols say; bad input is refused with a message that names the fix."""

import gymnasium as gym
import numpy as np
import pytest
from memagent.envs import make_vec
from memagent.envs.render import PALETTE, WALL_COLOUR, split

import memagent  # noqa: F401


def _nearest_palette(pixel, lit=False):
    palette = PALETTE.astype(float) * 0.85 + 255 * 0.15 if lit else PALETTE.astype(float)
    return int(np.argmin(((palette - pixel) ** 2).sum(1)))


@pytest.mark.parametrize("seed", range(6))
def test_cue_pixels_in_pixel_observation(seed):
    env = gym.make("memagent/TMaze-v0", obs_mode="pixels", n_cues=4)
    obs, _ = env.reset(seed=seed)
    cue = int(env.unwrapped.engine.cue[0])
    w = split(64, 3)                                       # tile sizes: 21, 22, 21
    y, x = w[0] + w[1] // 2, w[0] // 2                     # the centre of the west cell
    assert (obs[y, x] == PALETTE[cue]).all()
    assert _nearest_palette(obs[y, x]) == cue
    obs, *_ = env.step(1)
    assert (obs[y, x] == WALL_COLOUR).all() or (obs[y, x] != PALETTE[cue]).any()


def test_cue_pixels_in_rendered_frame():
    for seed in range(4):
        env = gym.make("memagent/TMaze-v0", render_mode="rgb_array")
        env.reset(seed=seed)
        frame = env.render()
        ts = env.unwrapped.render_tile_size
        assert frame.shape == (3 * ts, 12 * ts, 3)
        sign = frame[ts + ts // 2, ts // 2]                    # map cell (row 1, col 0)
        assert _nearest_palette(sign, lit=True) == int(env.unwrapped.engine.cue[0])
        agent = frame[ts + ts // 2 - 1:ts + ts // 2 + 1, ts + ts // 2]   # the red triangle at (1, 1)
        assert (agent[:, 0] > 200).all() and (agent[:, 1] < 80).all()   # lit red


def test_pixel_observation_of_long_maze_and_human_render():
    env = gym.make("memagent/TMaze-L1000-v0", obs_mode="pixels", render_mode="rgb_array")
    obs, _ = env.reset(seed=0)
    assert obs.shape == (64, 64, 3)
    assert env.render().shape == (48, 25 * 16, 3)            # a window that follows the agent
    human = gym.make("memagent/KeyDoor-v0", render_mode="human")
    human.reset(seed=0)
    human.step(1)
    human.close()


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"length": 0}, "length must be >= 1, got 0"),
    ({"length": (7, 3)}, "low <= high"),
    ({"n_cues": 1}, r"n_cues must be in 2\.\.8, got 1"),
    ({"obs_mode": "rgb"}, "obs_mode must be one of 'symbolic', 'pixels'; got 'rgb'"),
    ({"view_size": 4}, "view_size must be odd"),
    ({"render_mode": "window"}, "render_mode must be one of"),
    ({"image_size": 16}, r"image_size must be >= 36, got 16"),
    ({"step_penalty": -1}, "step_penalty must be >= 0"),
])
def test_bad_constructor_arguments(kwargs, message):
    from memagent.envs.tmaze import TMazeEnv

    with pytest.raises(ValueError, match=message):
        TMazeEnv(**kwargs)
    if "render_mode" not in kwargs:                  # gym.make passes the error on
        with pytest.raises(ValueError, match=message):
            gym.make("memagent/TMaze-v0", **kwargs)


def test_bad_actions():
    env = gym.make("memagent/TMaze-v0")
    env.reset(seed=0)
    for bad in (4, -1):
        with pytest.raises(ValueError, match=r"action must be in 0\.\.3 \(up, right, down, left\), got " + str(bad)):
            env.step(bad)
    with pytest.raises(ValueError, match="must be integers"):
        env.step(1.5)
    with pytest.raises(ValueError, match="action must be one integer"):
        env.step([1, 2])
    screens = gym.make("memagent/Screens-v0")
    screens.reset(seed=0)
    with pytest.raises(ValueError, match=r"0\.\.2 \(turn left, turn right, forward\), got 3"):
        screens.step(3)
    venv = make_vec("memagent/TMaze-v0", 4, seed=0)
    venv.reset()
    with pytest.raises(ValueError, match=r"actions must have shape \(n_envs,\) = \(4,\), got \(3,\)"):
        venv.step(np.zeros(3, dtype=int))
    with pytest.raises(ValueError, match="got 9"):
        venv.step(np.array([0, 1, 9, 2]))


def test_bad_ids_and_world_arguments():
    with pytest.raises(ValueError, match="env_id must be one of memagent/TMaze-v0"):
        make_vec("memagent/Nope-v0", 2)
    with pytest.raises(ValueError, match=r"n_colours must be in 2\.\.8"):
        make_vec("memagent/KeyDoor-v0", 2, n_colours=9)
    with pytest.raises(ValueError, match="n_items must be in"):
        gym.make("memagent/RecallSequence-v0", n_items=0)
    with pytest.raises(ValueError, match="width must be in"):
        gym.make("memagent/Screens-v0", width=1)
    with pytest.raises(ValueError, match="n_envs must be >= 1"):
        make_vec("memagent/TMaze-v0", 0)
