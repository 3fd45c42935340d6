"""The MAN agent through train / eval / render (a tiny budget: the plumbing, not the learning)."""

from __future__ import annotations

import json

import pytest

from .helpers import memagent


def test_man_train_eval_render(tmp_path):
    pytest.importorskip("memagent.agents.man")
    cfg = tmp_path / "man.toml"
    cfg.write_text("[agent_kwargs]\ncollect_steps = 200\nmemory_steps = 5\n\n"
                   "[memory_kwargs.net_kwargs]\nchannels = [4, 4, 4, 4]\n")
    run_dir = tmp_path / "man"
    res = memagent("train", "--agent", "man", "--steps", 300, "--config", cfg, "--run-dir", run_dir)
    assert res.returncode == 0, res.stderr
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
