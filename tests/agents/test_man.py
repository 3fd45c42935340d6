"""The MAN agent: Q-learning behaviour policy, filing screens by state id, coverage, the
`memagent imagine` figure (layout and visited/unvisited marking, checked by pixels).

A tiny stand-in for memagent/Screens-v0 (same interface: pixels, Discrete(3) turn-left /
turn-right / forward, info["state_id"] = direction * n_positions + position on reset and
step, unwrapped n_positions / n_directions / n_states, +1 and termination at the goal) keeps
the tests fast: 16 x 16 screens, 4 positions in a row, 2 directions (east, west).
"""

import re

import gymnasium as gym
import numpy as np
import pytest
from memagent.agents.man import ManAgent
from memagent.agents.qlearning import QLearning

from memagent.cli import main
from memagent.figures import RED, Layout, load_png

ENV_ID = "memagent-test/StandInScreens-v0"


class StandInScreens(gym.Env):
    """Row of 4 cells; start at 0 facing east; the goal is cell 3."""

    n_positions, n_directions, n_states = 4, 2, 8

    def __init__(self):
        self.observation_space = gym.spaces.Box(0, 255, (16, 16, 3), np.uint8)
        self.action_space = gym.spaces.Discrete(3)

    def _obs(self):
        img = self.np_random.integers(0, 30, (16, 16, 3), dtype=np.uint8)     # noise
        rows = slice(0, 8) if self.direction == 0 else slice(8, 16)
        img[rows, 4 * self.position: 4 * self.position + 4] = (230, 200, 40)  # the agent
        return img, {"state_id": self.direction * self.n_positions + self.position}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.position, self.direction = 0, 0
        return self._obs()

    def step(self, action):
        if action in (0, 1):
            self.direction = 1 - self.direction
        else:
            self.position = int(np.clip(self.position + (1 if self.direction == 0 else -1), 0, 3))
        done = self.position == 3
        obs, info = self._obs()
        return obs, float(done), done, False, info


if ENV_ID not in gym.registry:
    gym.register(ENV_ID, entry_point=StandInScreens, max_episode_steps=20)


def state_of_screen(img):
    """Read the state back from a stand-in screen."""
    cols = np.flatnonzero(img[:, :, 0].max(0) > 100)
    rows = np.flatnonzero(img[:, :, 0].max(1) > 100)
    return int(rows[0] >= 8) * 4 + int(cols[0] // 4)


def test_qlearning_shortest_path_and_obs_keys(tmp_path):
    env = gym.make(ENV_ID)
    q = QLearning(env, seed=0).learn(600)
    obs, info = env.reset(seed=1)
    for _ in range(3):
        obs, r, term, _, info = env.step(q.predict(obs, info))
    assert term and r == 1.0
    back = QLearning.load(q.save(tmp_path / "q.json"), env)
    assert all(np.array_equal(back.q[k], v) for k, v in q.q.items())
    # without state ids the table is keyed by observation bytes
    lake = gym.make("FrozenLake-v1", is_slippery=False)
    q2 = QLearning(lake, learning_rate=0.8, gamma=0.9, epsilon=0.3, seed=0).learn(3000)
    assert all(isinstance(k, bytes) for k in q2.q)
    obs, _ = lake.reset(seed=0)
    for _ in range(10):
        obs, r, term, trunc, _ = lake.step(q2.predict(obs))
        if term:
            break
    assert r == 1.0
    with pytest.raises(ValueError, match="Discrete"):
        QLearning(gym.make("Pendulum-v1"))


def test_agent_files_screens_by_state_and_reports_coverage(tmp_path):
    env = gym.make(ENV_ID)
    agent = ManAgent(env, memory="typeB", capacity=50, seed=0, device="cpu",
                     memory_kwargs={"net_kwargs": {"channels": (8, 16)}})
    agent.policy.learn(600)
    filed = agent.collect(120, epsilon=0.0)   # greedy: the shortest path only
    cov = agent.coverage()
    assert cov["visited"].tolist() == [True] * 4 + [False] * 4 and cov["fraction"] == 0.5
    assert filed.sum() == agent.short_term.seen.sum() >= 120
    for s in range(4):  # every filed screen is a screen of its state
        assert all(state_of_screen(img) == s for img in agent.short_term.items_of(s).numpy())
    assert len(agent.train_memory(50, batch_size=32, callback=lambda step, parts: step < 5)) == 5
    agent.train_memory(120, batch_size=32)
    real = agent.real_screens()[:4]
    assert (agent.long_term.recognize(real) == np.arange(4)).all()
    recon = agent.long_term.reconstruct(real, np.arange(4))   # encode -> decode
    assert recon.shape == real.shape and recon.dtype == np.uint8
    assert all(state_of_screen(img) == s for s, img in enumerate(recon))
    with pytest.raises(ValueError, match="one key per item"):
        agent.long_term.reconstruct(real, [0])
    back = ManAgent.load(agent.save(tmp_path / "run"), env, device="cpu")
    assert np.array_equal(back.coverage()["seen"], cov["seen"])
    assert np.array_equal(back.policy.q[0], agent.policy.q[0])


def test_sb3_model_as_behaviour_policy():
    from stable_baselines3 import DQN

    env = gym.make(ENV_ID)
    model = DQN("MlpPolicy", env, policy_kwargs={"net_arch": [8]}, seed=0, device="cpu")
    agent = ManAgent(env, policy=model, memory="typeA", seed=0, device="cpu",
                     memory_kwargs={"net_kwargs": {"channels": (8, 16)}})
    filed = agent.collect(50, epsilon=0.5)
    assert filed.sum() >= 50 and agent.coverage()["visited"].any()
    with pytest.raises(ValueError, match="n_states"):
        ManAgent(gym.make("CartPole-v1"))


def _check_labels(img, layout, unvisited):
    """The figure's title, panel names, axes and legend, by pixels: ink in the title strip, in
    the panel-name row above each panel, under the columns and left of the rows; the red of
    the unvisited marker exactly in the unvisited cells (both panels) and the legend's marker,
    nowhere else."""
    from memagent.figures import BACKGROUND, LINE, TITLE_LINES

    ink = np.any(img != BACKGROUND, axis=-1) & ~np.all(img == RED, axis=-1)
    y0, x0, y1, x1 = layout.title_box
    assert ink[y0:y1, x0:x1].sum() > 100                          # the title
    head = TITLE_LINES * LINE + 4
    for panel in range(layout.panels):                            # "imagined", "real"
        x = layout.panel_x(panel)
        assert ink[head:head + LINE, x:x + layout.panel_width].sum() > 20
    below = layout.top + layout.grid_height
    assert ink[below:below + LINE, layout.left:].sum() > 10 * layout.n_positions  # positions
    assert ink[below + LINE:below + 2 * LINE, layout.left:].sum() > 50           # "position ->"
    assert ink[layout.top:below, :layout.left].sum() > 50 * layout.n_directions  # rows, "direction"
    y0, x0, y1, x1 = layout.legend_marker
    expected = np.zeros(img.shape[:2], bool)
    expected[y0:y1, x0:x1] = True                                 # the legend's marker ...
    assert np.all(img[y0:y1, x0:x1] == RED, axis=-1).sum() > 10
    assert ink[y0:y1, x1:].sum() > 100                            # ... and what it means
    for s in unvisited:
        d, p = divmod(s, layout.n_positions)
        for panel in range(layout.panels):
            b0, a0, b1, a1 = layout.box(panel, d, p)
            expected[b0:b1, a0:a1] = True
    is_red = np.all(img == RED, axis=-1)
    assert not (is_red & ~expected).any(), "red outside the unvisited cells and the legend"


def test_imagine_cli_writes_marked_grid(tmp_path, capsys):
    out, run = tmp_path / "fig.png", tmp_path / "run"
    argv = ["imagine", "--env", ENV_ID, "--out", str(out), "--memory", "typeA",
            "--steps", "150", "--q-steps", "600", "--collect-steps", "120", "--epsilon", "0",
            "--judge-steps", "400", "--channels", "8,16", "--stem", "2", "--pool", "1",
            "--learning-rate", "1e-3", "--no-linear-skip", "--seed", "0", "--save-run", str(run)]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "4/8 states visited" in text and "[4, 5, 6, 7]" in text
    judged = float(re.search(r"([\d.]+)% of imagined screens of visited", text).group(1))
    assert judged >= 75.0
    real = float(re.search(r"([\d.]+)% on held-out real screens", text).group(1))
    assert real >= 95.0  # the CNN judge recognises real screens before it judges imagined ones
    img = load_png(out)
    layout = Layout.labelled(n_positions=4, n_directions=2, height=16, width=16, pad=2, panels=2)
    assert img.shape == (*layout.shape, 3)
    is_red = np.all(img == RED, axis=-1)
    _check_labels(img, layout, unvisited=[4, 5, 6, 7])
    for panel in (0, 1):
        for d in range(2):
            for p in range(4):
                y0, x0, y1, x1 = layout.box(panel, d, p)
                cell = img[y0:y1, x0:x1]
                red = is_red[y0:y1, x0:x1]
                if d == 0:   # visited: a screen, no cross; the agent drawn in the top half
                    assert not red.any()
                    assert state_of_screen(cell) == p
                else:        # unvisited: the red cross on both diagonals, greyed
                    assert red[np.arange(16), np.arange(16)].mean() > 0.9
                    assert red[np.arange(16), 15 - np.arange(16)].mean() > 0.9
    # the saved run gives the same figure without training
    out2 = tmp_path / "again.png"
    assert main(["imagine", "--env", ENV_ID, "--out", str(out2), "--run", str(run),
                 "--judge-steps", "0"]) == 0
    assert np.array_equal(load_png(out2), img)
    assert main(["imagine", "--env", "CartPole-v1", "--out", str(out2)]) == 2
    assert main(["imagine", "--env", ENV_ID, "--out", str(tmp_path / "x.jpg")]) == 2


@pytest.mark.parametrize("extra, at_least", [
    ([], 90.0),                                            # default: root term + class code
    (["--alpha", "0", "--root-noise", "0", "--no-class-code"], 0.0),   # the paper's Type B
])
def test_imagine_cli_type_b_judged(tmp_path, capsys, extra, at_least):
    """Type B through the CLI on the stand-in: the judge (trained on real screens only) must
    recognise imagined screens of visited states, and recognize is reported."""
    argv = ["imagine", "--env", ENV_ID, "--out", str(tmp_path / "b.png"), "--memory", "typeB",
            "--steps", "150", "--q-steps", "600", "--collect-steps", "120", "--epsilon", "0",
            "--judge-steps", "400", "--channels", "8,16", "--stem", "2", "--pool", "1", "--learning-rate",
            "1e-3", "--no-linear-skip", "--seed", "0", "--save-run", str(tmp_path / "run"), *extra]
    assert main(argv) == 0
    text = capsys.readouterr().out
    judged = float(re.search(r"([\d.]+)% of imagined screens of visited", text).group(1))
    assert judged >= at_least, text
    assert re.search(r"Type B recognize: [\d.]+% of \d+ held-out", text)
    from memagent.memory.generative import GenerativeMemory
    config = GenerativeMemory.load(tmp_path / "run" / "man" / "long_term.pt", device="cpu").config
    assert config["class_code"] is (not extra) and config["alpha"] == (0.0 if extra else 1.0)


def test_imagine_cli_latent_prior_classes(tmp_path):
    """--latent-prior classes reaches the memory: after training, each visited state has its
    aggregate posterior fitted (and only those), and imagined latents are drawn from it."""
    argv = ["imagine", "--env", ENV_ID, "--out", str(tmp_path / "a.png"), "--steps", "20",
            "--q-steps", "300", "--collect-steps", "60", "--judge-steps", "0", "--channels", "4,8",
            "--stem", "2", "--pool", "1", "--no-linear-skip", "--seed", "0",
            "--latent-prior", "classes", "--save-run", str(tmp_path / "run")]
    assert main(argv) == 0
    from memagent.memory.generative import GenerativeMemory
    from memagent.memory.replay import ClassQueueMemory

    mem = GenerativeMemory.load(tmp_path / "run" / "man" / "long_term.pt", device="cpu")
    assert mem.config["latent_prior"] == "classes"
    counts = ClassQueueMemory.load(tmp_path / "run" / "man" / "short_term.pt").counts
    assert np.array_equal(mem.z_fitted.cpu().numpy(), np.asarray(counts) > 0)
    with pytest.raises(SystemExit):  # argparse names the flag and its choices
        main([*argv[:-2], "--latent-prior", "posterior"])


def test_imagine_on_screens_v0_layout(tmp_path, capsys):
    """The real memagent/Screens-v0 (4 directions x 12 positions), tiny budget: layout and
    marking only (the learning is checked on the stand-in above and in `memagent bench`)."""
    import memagent  # noqa: F401

    env = gym.make("memagent/Screens-v0")
    base = env.unwrapped
    out = tmp_path / "screens.png"
    assert main(["imagine", "--out", str(out), "--steps", "20", "--q-steps", "3000",
                 "--collect-steps", "300", "--epsilon", "0", "--judge-steps", "0",
                 "--channels", "8,8,8", "--seed", "0", "--no-progress"]) == 0
    text = capsys.readouterr().out
    # progress: a line at every tenth of each phase, with its steps and losses
    lines = [line for line in text.splitlines() if "training the long-term memory: step" in line]
    assert [re.search(r"step (\d+)/20", line).group(1) for line in lines] == [str(s) for s in range(2, 21, 2)]
    assert all(re.search(r"loss [\d,.]+, recon [\d,.]+, kl [\d,.e+-]+, root", line) for line in lines)
    assert "memagent imagine: Q-learning the behaviour policy: step 3,000/3,000, episodes" in text
    assert "acting and filing screens by state: step 300/300, states" in text
    n_visited = int(re.search(r"coverage: (\d+)/48", text).group(1))
    assert 0 < n_visited < 48   # the greedy shortest path leaves states unvisited
    unvisited = eval(text.split("unvisited (red cross): ")[1].splitlines()[0])
    img = load_png(out)
    layout = Layout.labelled(base.n_positions, base.n_directions, 64, 64, 2, 2)
    assert (base.n_positions, base.n_directions) == (12, 4) and img.shape == (*layout.shape, 3)
    is_red = np.all(img == RED, axis=-1)
    _check_labels(img, layout, unvisited)
    for s in range(48):
        d, p = divmod(s, 12)
        for panel in (0, 1):
            y0, x0, y1, x1 = layout.box(panel, d, p)
            diag = is_red[y0:y1, x0:x1][np.arange(64), np.arange(64)].mean()
            assert (diag > 0.9) == (s in unvisited)


def test_type_b_frame_views_name_the_recognised_state():
    """What `memagent render --out FILE.gif` shows of a Type B run, frame by frame: the
    reconstruction and imagined screens of the frame's state, and a line with the true and the
    recognised state (the stand-in: the agent's block must come back in its own cell)."""
    from memagent.agents.man_adapter import ManAdapter

    from memagent.agent import ScreenView
    from memagent.commands.render import play
    from memagent.config import build_config

    config = build_config({"agent": "man", "env_id": ENV_ID, "memory": "typeB", "total_timesteps": 600,
                           "agent_kwargs": {"collect_steps": 120, "memory_steps": 150, "epsilon": 0.0},
                           "memory_kwargs": {"learning_rate": 1e-3, "pool": 1, "net_kwargs": {
                               "channels": [8, 16], "stem": 2, "skip": False}}})
    adapter = ManAdapter(config)
    adapter.build()
    adapter.learn(config.total_timesteps)
    records, outcomes = play(adapter, adapter.make_env(1, seed=3, render=True), episodes=1)
    assert len(outcomes) == 1 and len(records) == 4 + 3   # 3 steps east, the end held
    for frame, views, _ in records:
        assert isinstance(views["reconstruction"], ScreenView) and isinstance(views["imagined"], ScreenView)
        state = state_of_screen(frame)
        assert state_of_screen(views["reconstruction"].image) == state
        assert state_of_screen(views["imagined"].image) == state
        assert views["state"].startswith(f"true state {state} ")
        assert f"recognised state {state} (right)" in views["state"]
    # a state the agent never visited is named so
    views = adapter.frame_views(np.zeros((16, 16, 3), np.uint8), {"state_id": 5})
    assert "never visited in training" in views["state"]
