"""memagent tune: TPE on Ray Tune with pruning; the best is at least the default; the preset trains."""

from __future__ import annotations

import json

import yaml

from .helpers import memagent
from .test_bad_input import one_line_error


def test_tune_finds_at_least_the_default_and_writes_a_preset_that_trains(tmp_path):
    out, preset = tmp_path / "tune", tmp_path / "best.yml"
    res = memagent("tune", "--agent", "ppo", "--steps", 1024, "--n-envs", 2, "--set", "agent_kwargs.n_steps=64",
                   "--eval-every", 256, "--eval-episodes", 8, "--trials", 3, "--scheduler", "asha",
                   "--search", "agent_kwargs.learning_rate=loguniform(1e-4, 3e-3)",
                   "--search", "agent_kwargs.n_epochs=int(1, 4)", "--out", out, "--preset", preset, timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "TPE over agent_kwargs.learning_rate, agent_kwargs.n_epochs" in res.stdout
    results = [json.loads(p.read_text()) for p in out.rglob("results.json")]
    default = [r for r in results if r["params"] == {"agent_kwargs.learning_rate": 3e-4, "agent_kwargs.n_epochs": 4}]
    assert default, "the first trial is the preset's config"
    best_value = max(r["final"]["mean_return"] if r["final"]["success_rate"] is None else r["final"]["success_rate"]
                     for r in results)
    values = yaml.safe_load(preset.read_text())
    assert values["agent"] == "ppo" and values["total_timesteps"] == 1024
    best = [r for r in results if r["params"] == {f"agent_kwargs.{k}": values["agent_kwargs"][k]
                                                  for k in ("learning_rate", "n_epochs")}]
    assert best and best[0]["final"]["success_rate"] == best_value >= default[0]["final"]["success_rate"]
    from memagent.cli import main

    run_dir = tmp_path / "run"
    assert main(["train", "--config", str(preset), "--run-dir", str(run_dir), "--no-progress"]) == 0
    config = json.loads((run_dir / "config.json").read_text())
    assert config["agent_kwargs"]["learning_rate"] == values["agent_kwargs"]["learning_rate"]
    # trained as written: the same greedy evaluations as the tuning trial of that config
    assert (run_dir / "evaluations.csv").read_text() == (tmp_path / "tune" / best[0]["trial"] / "evaluations.csv").read_text()


def test_tune_bad_space_is_one_line():
    line = one_line_error(memagent("tune", "--search", "agent_kwargs.learning_rate=normal(0, 1)"), "tune")
    assert "unknown space 'normal'" in line
    line = one_line_error(memagent("tune", "--search", "agent_kwargs.learning_rate=loguniform(0, 1)"), "tune")
    assert "needs low > 0" in line
    line = one_line_error(memagent("tune", "--agent", "ppo", "--search", "agent_kwargs.lr=uniform(0, 1)"), "tune")
    assert "unknown 'lr'" in line
