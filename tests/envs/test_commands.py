"""``memagent envs``, ``memagent play`` (headless, scripted keys) and ``memagent bench envs``."""

import json
import os
import subprocess
import sys

import gymnasium as gym
from memagent.envs import ENVS

import memagent  # noqa: F401
from memagent.cli import main


def test_envs_lists_every_id(capsys):
    assert main(["envs"]) == 0
    out = capsys.readouterr().out
    assert all(env_id in out for env_id in ENVS) and "T-maze" in out
    assert main(["envs", "Screens-v0"]) == 0
    assert "state_id" in capsys.readouterr().out
    assert main(["envs", "Nope-v0"]) == 2


def test_play_headless_with_scripted_keys():
    env = gym.make("memagent/TMaze-v0")
    env.reset(seed=5)
    env.reset()                                      # the episode after the restart key
    cue = int(env.unwrapped.engine.cue[0])
    door = "w" if cue == 0 else "s"
    keys = "ddd,r," + "d" * 9 + door + "," + "a" * 30 + ",q,d"   # restart, win, time out, quit
    run = subprocess.run(
        [sys.executable, "-m", "memagent", "play", "TMaze-v0", "--seed", "5", "--fps", "0", "--keys", keys],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "SDL_VIDEODRIVER": "dummy", "SDL_AUDIODRIVER": "dummy"})
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0] == "episode 1: return 1.00, 10 steps, success"
    assert lines[1] == "episode 2: return -3.00, 30 steps, failed (time limit)"   # 30 idle steps at -1/10
    assert lines[-1] == "played 43 steps, 2 episodes"


def test_play_stops_and_turns_in_screens(capsys):
    assert main(["play", "Screens-v0", "--fps", "0", "--keys", "dwwwwwwwww", "--max-steps", "3"]) == 0
    assert "played 3 steps, 0 episodes" in capsys.readouterr().out
    assert main(["play", "Screens-v0", "--fps", "0", "--keys", "wwwdww", "--episodes", "1"]) == 0
    assert "episode 1: return 1.00, 6 steps, success" in capsys.readouterr().out
    assert main(["play", "TMaze-v0", "--keys", "dx!"]) == 2


def test_bench_envs_quick(tmp_path, capsys):
    path = tmp_path / "envs.json"
    assert main(["bench", "envs", "--envs", "TMaze-v0", "Screens-v0", "--sizes", "1", "8",
                 "--min-time", "0.02", "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert "memagent/TMaze-v0" in out and "pixels" in out
    data = json.loads(path.read_text())
    assert data["bench"] == "envs" and len(data["rows"]) == 4 and len(data["headers"]) == 11
    assert all(v > 0 for row in data["rows"] for v in row[2:])
