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
