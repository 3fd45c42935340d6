"""The MAN agent through train / eval / render (a tiny budget: the plumbing, not the learning)."""

from __future__ import annotations

import json
import re

import pytest

from .helpers import memagent


def test_man_train_eval_render(tmp_path):
    pytest.importorskip("memagent.agents.man")
    cfg = tmp_path / "man.toml"
    cfg.write_text("[agent_kwargs]\ncollect_steps = 200\nmemory_steps = 5\n\n"
                   "[memory_kwargs.net_kwargs]\nchannels = [4, 4, 4, 4]\n")
    run_dir = tmp_path / "man"
    res = memagent("train", "--agent", "man", "--steps", 300, "--config", cfg, "--run-dir", run_dir,
                   "--no-progress")
    assert res.returncode == 0, res.stderr
    # progress instead of silence: each phase says what it does, then its steps and losses
    assert "Q-learning the behaviour policy: 300 steps" in res.stdout
    assert "acting and filing screens by state: step 200/200, states " in res.stdout
    assert "training the long-term memory: 5 Adam steps of 64 screens" in res.stdout
    assert re.search(r"training the long-term memory: step 5/5, loss [\d,.]+, recon", res.stdout)
    config = json.loads((run_dir / "config.json").read_text())
    assert config["env_id"] == "memagent/Screens-v0" and config["memory"] == "typeA"
    assert (run_dir / "man" / "long_term.pt").exists()
    res = memagent("eval", run_dir, "--episodes", 2)
    assert res.returncode == 0, res.stderr
    assert "2 episodes" in res.stdout and "states in the memory" in res.stdout
    png = tmp_path / "man.png"
    res = memagent("render", run_dir, "--out", png)
    assert res.returncode == 0, res.stderr
    assert png.stat().st_size > 1000 and "coverage" in res.stdout


def _replay(run_dir, seed: int, n_frames: int):
    """The screens (observations) and state ids of the first episode ``memagent render`` plays,
    replayed apart from it: the run's agent, loaded afresh, greedy in an env seeded ``seed``."""
    import gymnasium as gym
    import numpy as np

    from memagent.agent import load_agent

    agent = load_agent(run_dir)
    env = gym.make("memagent/Screens-v0")
    obs, info = env.reset(seed=seed)
    screens, states = [obs], [info["state_id"]]
    while len(screens) < n_frames:
        action, _ = agent.act(obs[None], info)
        obs, _, terminated, truncated, info = env.step(int(action[0]))
        screens.append(obs)
        states.append(info["state_id"])
        if terminated or truncated:
            break
    return np.stack(screens), np.array(states)


def _panels(image, layout):
    """{label: the panel at the screen's own resolution} (compose scales 64 x 64 by 3)."""
    return {k: image[y0:y1:3, x0:x1:3] for k, (y0, x0, y1, x1) in layout.boxes.items()}


def test_man_render_gif_shows_real_reconstruction_imagined(tmp_path):
    """`memagent render RUN --out FILE.gif` on a MAN run: at every step the real screen (the
    observation), the memory's reconstruction of it and a screen imagined from the state id,
    labelled; checked by pixels against a replay of the same episode."""
    import numpy as np
    from PIL import Image

    from memagent.agent import ScreenView
    from memagent.cli import main
    from memagent.commands.render import compose

    cfg = tmp_path / "man.toml"  # Screens-v0's smallest MAN budget, the memory trained enough
    cfg.write_text("[agent_kwargs]\ncollect_steps = 200\nmemory_steps = 150\n\n"  # to reconstruct
                   "[memory_kwargs.net_kwargs]\nchannels = [4, 4, 4, 4]\nstem = 4\nskip = true\n")
    run_dir = tmp_path / "man"
    assert main(["train", "--agent", "man", "--steps", "300", "--config", str(cfg),
                 "--run-dir", str(run_dir), "--no-progress"]) == 0
    frames_dir = tmp_path / "frames"
    assert main(["render", str(run_dir), "--out", str(frames_dir) + "/", "--episodes", "1",
                 "--max-frames", "30", "--seed", "7"]) == 0
    gif = tmp_path / "man.gif"
    assert main(["render", str(run_dir), "--out", str(gif), "--episodes", "1",
                 "--max-frames", "30", "--seed", "7"]) == 0
    blank = ScreenView(np.zeros((64, 64, 3), np.uint8))
    _, layout = compose(blank.image, {"reconstruction": blank, "imagined": blank, "state": "x"},
                        "caption", return_layout=True)
    assert list(layout.boxes) == ["real", "reconstruction", "imagined"]
    files = sorted(frames_dir.glob("frame_*.png"))
    screens, states = _replay(run_dir, 7, len(files))
    n = len(screens)
    assert n >= 3, "the episode is too short to compare states"
    real, recon = [], []
    for i, path in enumerate(files[:n]):  # PNG frames: lossless, the panels exactly
        image = np.asarray(Image.open(path).convert("RGB"))
        panels = _panels(image, layout)
        assert np.array_equal(panels["real"], screens[i]), f"frame {i}: real panel != env screen"
        assert panels["reconstruction"].std() > 5 and panels["imagined"].std() > 5
        real.append(panels["real"].astype(float))
        recon.append(panels["reconstruction"].astype(float))
        strip = image[:layout.label_height]
        for _, x0, _, x1 in layout.boxes.values():  # each panel's label is written above it
            assert (strip[:, x0:x1].max(-1) > 100).sum() > 20
        text = image[layout.text_top:]
        assert (text.max(-1) > 100).sum() > 50   # the "true state ..." line and the caption
    # the reconstruction is of its own screen: closer to it than to screens of other states
    own = [np.abs(recon[i] - real[i]).mean() for i in range(n)]
    other = [np.mean([np.abs(recon[i] - real[j]).mean() for j in range(n) if states[j] != states[i]])
             for i in range(n)]
    assert np.mean(own) < np.mean(other) and np.mean(np.less(own, other)) > 0.5, (own, other)
    # the GIF holds the same frames, up to its 256-colour palette
    with Image.open(gif) as im:
        im.seek(0)
        first = np.asarray(im.convert("RGB"))
    assert first.shape == image.shape
    panels = _panels(first, layout)
    assert np.abs(panels["real"].astype(float) - screens[0]).mean() < 6
    assert (first[:layout.label_height].max(-1) > 100).sum() > 60
