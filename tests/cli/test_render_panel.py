"""The memory panel beside the screen: heatmaps for 2-D reads, bars for 1-D."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from memagent.commands.render import PANEL_WIDTH, compose, draw_view, memory_views, prepare_views


def test_heatmap_follows_the_attention():
    weights = np.zeros((1, 8))
    weights[0, 2] = 1.0  # all attention on stored step 2 of 8
    img = draw_view(weights, 10, 80)
    assert img.shape == (10, 80, 3)
    bright = img.sum(axis=(0, 2))
    assert np.argmax(bright) // 10 == 2  # the brightest columns are step 2's


def test_bars_rise_with_activity():
    img = draw_view(np.array([0.0, 1.0]), 20, 20)
    lit = (img.sum(axis=2) > 3 * 24).sum(axis=0)
    assert lit[:10].max() < lit[10:].min()


def test_compose_puts_the_panel_beside_the_screen():
    frame = np.full((32, 32, 3), 200, dtype=np.uint8)
    plain = compose(frame, {}, "step 0")
    with_memory = compose(frame, {"attention": np.random.rand(4, 12), "bank": np.random.rand(6)}, "x")
    assert with_memory.shape[1] == plain.shape[1] + PANEL_WIDTH
    assert plain.shape[0] >= 240 and with_memory[:, -PANEL_WIDTH:].std() > 5


def test_memory_views_collects_inspect_from_submodules():
    class Core(nn.Module):
        def inspect(self):
            return {"attention": torch.ones(1, 3).numpy()}

    policy = nn.Sequential(nn.Linear(2, 2), Core())
    views = memory_views(policy)
    assert list(views) == ["attention"] and views["attention"].shape == (1, 3)


def test_prepare_views_keeps_only_filled_hopfield_slots():
    attention = np.arange(2 * 6, dtype=float).reshape(1, 2, 6)  # (B=1, heads, N)
    positions = np.array([[0, 1, 2, -1, -1, -1]])  # three steps stored so far
    views = prepare_views({"attention": attention, "positions": positions})
    assert list(views) == ["attention"] and views["attention"].shape == (2, 3)
    np.testing.assert_array_equal(views["attention"][1], [6, 7, 8])


# -- one episode per cue, and a panel that reads without the docs -------------------------

def _render_venv(env_id="memagent/TMaze-v0", seed=0):
    """What ``memagent render`` plays in: one rgb_array env, the frame in every info."""
    import gymnasium as gym
    from memagent.agents.sb3_adapter import FrameInfo
    from stable_baselines3.common.vec_env import DummyVecEnv

    venv = DummyVecEnv([lambda: FrameInfo(gym.make(env_id, render_mode="rgb_array"))])
    venv.seed(seed)
    return venv


class _AlwaysNorth:
    """A memoryless policy: walk east to the junction, then take the north door (cue 0's)."""

    def __init__(self):
        self.policy, self.t = nn.Linear(1, 1), 0

    def predict(self, obs, state=None, episode_start=None, deterministic=True):
        self.t = 0 if episode_start is not None and episode_start[0] else self.t + 1
        return np.array([1 if self.t < 9 else 0]), state


def test_render_plays_one_episode_per_cue_so_a_memoryless_policy_fails_one():
    from memagent.commands.render import episode_cues, play

    venv = _render_venv()
    episodes, cues = episode_cues(venv, None)
    assert (episodes, cues) == (2, [0, 1])
    assert episode_cues(venv, 5) == (5, [0, 1, 0, 1, 0])
    assert episode_cues(venv, None, random_cues=True) == (2, None)
    records, outcomes = play(_AlwaysNorth(), venv, episodes, cues)
    assert outcomes == [(0, True), (1, False)]  # with a cue drawn per episode both could be 0
    first = [f for f, _, caption in records if caption.endswith("step 0")]
    assert [c for *_, c in records if c.endswith("step 0")] == ["episode 1 (cue 0)  step 0",
                                                                 "episode 2 (cue 1)  step 0"]
    a, b = (np.asarray(f, dtype=int) for f in first)
    changed = np.abs(a - b).sum(-1) > 0  # only the cue's sign differs between the two starts
    assert 0 < changed.mean() < 0.1
    blue, yellow = a[changed].mean(0), b[changed].mean(0)  # cue 0 is blue, cue 1 yellow (PALETTE)
    assert blue[2] > blue[0] + 100 and yellow[0] > yellow[2] + 100


def test_panel_has_title_axes_and_colour_bar():
    from matplotlib import colormaps

    from memagent.commands.render import TEXT, draw_panel

    weights = np.linspace(0.0, 0.5, 4 * 10).reshape(4, 10)  # (heads, stored steps)
    panel = draw_panel({"attention": weights}, 240).astype(int)
    assert panel.shape == (240, PANEL_WIDTH, 3)
    def text_pixels(img):  # light grey, as TEXT antialiased; the heatmap and bar are viridis
        return (img.min(-1) > 110) & (img.max(-1) - img.min(-1) < 20) & (img.max(-1) <= max(TEXT))

    is_text = text_pixels(panel)
    assert is_text[:13].sum() > 100  # the title row
    assert is_text[-14:, 16:].sum() > 50  # the column axis under the heatmap
    assert is_text[20:220, :14].sum() > 30  # the row axis ("head"), written upwards
    assert is_text[:20, -34:].sum() > 10 and is_text[210:, -34:].sum() > 10  # the bar's 0.5 and 0
    viridis = (colormaps["viridis"]([1.0, 0.0])[:, :3] * 255).astype(int)
    bar = [x for x in range(PANEL_WIDTH) if np.abs(panel[15, x] - viridis[0]).sum() < 30
           and np.abs(panel[225, x] - viridis[1]).sum() < 30]
    assert len(bar) >= 6  # a column bright at the top and dark at the bottom, 8 px wide
    empty = draw_panel({"attention": np.zeros(0)}, 240).astype(int)
    assert text_pixels(empty)[:13].sum() > 100  # "... nothing read yet"
    assert empty[14:].std() < 1  # no heatmap, no bar
