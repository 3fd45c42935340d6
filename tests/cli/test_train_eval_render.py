"""train -> eval -> render -> runs -> resume, each through ``python -m memagent``."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest

from .helpers import memagent, train_env

STEPS = 1024


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    config = root.parent / "small.json"
    config.write_text(json.dumps({"checkpoint_every": 256, "keep_checkpoints": 2,
                                  "agent_kwargs": {"n_steps": 64, "batch_size": 64}}))
    run_dir = root / "first"
    res = memagent("train", "--env", train_env(), "--agent", "memory-ppo", "--memory", "hopfield", "--steps", STEPS,
                   "--n-envs", 4, "--seed", 3, "--device", "auto", "--config", config,
                   "--run-dir", run_dir, "--no-progress")
    assert res.returncode == 0, res.stderr
    return run_dir, res


def test_train_writes_a_complete_run_folder(run):
    run_dir, res = run
    assert "completed 1,024 steps" in res.stdout
    # --device auto says in one line why it chose the CPU (no GPU here, or 4 envs is too few)
    assert "device cpu: auto: CPU, " in res.stdout + res.stderr
    config = json.loads((run_dir / "config.json").read_text())
    assert config["agent"] == "memory-ppo" and config["memory"] == "hopfield" and config["seed"] == 3 and config["total_timesteps"] == STEPS
    assert config["agent_kwargs"]["n_steps"] == 64  # the file's value over the preset's
    assert config["checkpoint_every"] == 256
    versions = json.loads((run_dir / "versions.json").read_text())
    assert versions["device"] == "cpu" and {"torch", "stable_baselines3", "memagent"} <= set(versions)
    assert (run_dir / "model.zip").stat().st_size > 1000
    ckpts = sorted(int(p.stem.split("_")[1]) for p in (run_dir / "checkpoints").glob("model_*.zip"))
    assert ckpts == [768, STEPS]  # every 256 steps, the newest 2 kept
    assert list((run_dir / "tb").rglob("events.out.tfevents*"))
    with open(run_dir / "episodes.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert rows and set(rows[0]) == {"step", "return", "length", "success"}
    assert all(0 < int(r["step"]) <= STEPS for r in rows)
    state = json.loads((run_dir / "state.json").read_text())
    assert state["status"] == "completed" and state["steps"] == STEPS


def test_eval_prints_intervals_and_writes_json(run, tmp_path):
    run_dir, _ = run
    out = tmp_path / "eval.json"
    res = memagent("eval", run_dir, "--episodes", 6, "--json", out)
    assert res.returncode == 0, res.stderr
    assert "95% CI" in res.stdout and "mean return" in res.stdout
    result = json.loads(out.read_text())
    assert result["episodes"] == 6 and result["deterministic"] is True
    lo, hi = result["return_ci"]
    assert lo <= result["mean_return"] <= hi


def test_render_writes_an_animated_gif(run, tmp_path):
    from PIL import Image

    run_dir, _ = run
    gif = tmp_path / "agent.gif"
    res = memagent("render", run_dir, "--out", gif, "--episodes", 1, "--max-frames", 40)
    assert res.returncode == 0, res.stderr
    with Image.open(gif) as img:
        assert img.n_frames > 2
        img.seek(1)
        pixels = np.asarray(img.convert("RGB"))
    assert pixels.shape[0] >= 64 and pixels.std() > 5  # not a blank screen
    assert "memory views: attention" in res.stdout  # the hopfield read, drawn beside the screen
    assert pixels.shape[1] > pixels.shape[0] * 2  # screen + memory panel


def test_runs_lists_the_run(run):
    run_dir, _ = run
    res = memagent("runs", "--dir", run_dir.parent)
    assert res.returncode == 0, res.stderr
    assert run_dir.name in res.stdout and "memory-ppo" in res.stdout and "hopfield" in res.stdout
    assert "1,024" in res.stdout


def test_resume_continues_the_step_count(run, tmp_path):
    run_dir, _ = run
    copy = tmp_path / "resumed"
    shutil.copytree(run_dir, copy)
    before = (copy / "episodes.csv").read_text().splitlines()
    res = memagent("train", "--resume", copy, "--steps", 2 * STEPS, "--no-progress")
    assert res.returncode == 0, res.stderr
    assert f"from model_{STEPS}.zip at step {STEPS:,}" in res.stdout
    assert json.loads((copy / "state.json").read_text())["steps"] == 2 * STEPS
    assert json.loads((copy / "config.json").read_text())["total_timesteps"] == 2 * STEPS
    after = (copy / "episodes.csv").read_text().splitlines()
    assert after[: len(before)] == before  # appended, header once
    new_steps = [int(line.split(",")[0]) for line in after[len(before):]]
    assert new_steps and min(new_steps) > STEPS and max(new_steps) <= 2 * STEPS
    assert (copy / "checkpoints" / f"model_{2 * STEPS}.zip").exists()
