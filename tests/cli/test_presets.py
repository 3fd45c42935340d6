"""Presets fill what the user left out; the user's values win; config files are checked."""

from __future__ import annotations

import pytest
from memagent.agents import presets

from memagent.runs import TrainConfig, load_config_file


def test_default_run_is_hopfield_memory_ppo_on_tmaze():
    config = presets.resolve(TrainConfig(), set())
    assert (config.env_id, config.agent, config.memory) == ("memagent/TMaze-v0", "memory-ppo", "hopfield")
    assert config.total_timesteps == presets.PRESETS["memagent/TMaze-v0"]["memory-ppo"]["total_timesteps"]
    assert config.agent_kwargs["n_steps"] == 128


def test_user_values_win_and_dicts_merge():
    config = TrainConfig(agent="ppo", total_timesteps=123, agent_kwargs={"learning_rate": 0.1})
    config = presets.resolve(config, {"agent", "total_timesteps", "agent_kwargs"})
    assert config.total_timesteps == 123
    assert config.agent_kwargs["learning_rate"] == 0.1 and config.agent_kwargs["n_steps"] == 128


def test_linear_schedule_strings():
    kwargs = presets.algo_kwargs({"learning_rate": "lin_1e-3", "n_steps": 8})
    assert kwargs["n_steps"] == 8 and kwargs["learning_rate"](0.5) == pytest.approx(5e-4)
    with pytest.raises(ValueError, match="lin_"):
        presets.algo_kwargs({"learning_rate": "lin_fast"})


def test_toml_config_nested_tables(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('agent = "ppo"\nseed = 4\n[agent_kwargs]\nn_steps = 32\n')
    assert load_config_file(path) == {"agent": "ppo", "seed": 4, "agent_kwargs": {"n_steps": 32}}
    path.write_text("seed = true\n")  # bool is not an int here
    with pytest.raises(ValueError, match="'seed' must be int"):
        load_config_file(path)


def test_registry_lists_every_agent_and_reports_missing_ones():
    assert set(presets.AGENTS) == {"memory-ppo", "ppo", "dqn", "man"}
    with pytest.raises(ValueError, match="known agents: memory-ppo, ppo, dqn, man"):
        presets.check_agent("a2c")


def test_curriculum_checks_name_the_fix():
    def resolve(**kw):
        return presets.resolve(TrainConfig(**kw), set(kw))

    with pytest.raises(ValueError, match="pass --steps above 150"):
        resolve(curriculum=[[10, 50], [100, 100]], total_timesteps=150)
    with pytest.raises(ValueError, match="no length argument"):
        resolve(env_id="memagent/KeyDoor-v0", curriculum=[[3, 10]], total_timesteps=100)
    with pytest.raises(ValueError, match="not a memagent env"):
        resolve(env_id="CartPole-v1", agent="ppo", curriculum=[[3, 10]], total_timesteps=100)
    with pytest.raises(ValueError, match="normalize"):
        resolve(curriculum=[[3, 10]], total_timesteps=100, normalize=True)
    with pytest.raises(ValueError, match=r"stage 0 must be \[length, steps\]"):
        resolve(curriculum=[[3]], total_timesteps=100)
    assert resolve(curriculum=[[3, 10]], total_timesteps=100).curriculum == [[3, 10]]
    assert resolve().curriculum == []  # TMaze-v0's default run has none
    l1000 = resolve(env_id="memagent/TMaze-L1000-v0")  # its preset passes its own checks
    assert [length for length, _ in l1000.curriculum] == [10, 100]
    assert l1000.memory_kwargs["similarity"] == "cosine" and l1000.n_envs == 8


def test_cli_curriculum_trains_each_stage_then_the_env(tmp_path):
    import json

    from .helpers import memagent

    config = tmp_path / "small.json"
    config.write_text(json.dumps({"agent_kwargs": {"n_steps": 16, "batch_size": 16, "n_epochs": 1}}))
    run_dir = tmp_path / "run"
    res = memagent("train", "--curriculum", "3:32,5:32", "--steps", 96, "--n-envs", 2, "--config", config,
                   "--run-dir", run_dir, "--no-progress", "--device", "cpu")
    assert res.returncode == 0, res.stderr
    assert "step 32: training on stage 1" in res.stdout and "step 64: training on the model's own env" in res.stdout
    assert json.loads((run_dir / "config.json").read_text())["curriculum"] == [[3, 32], [5, 32]]
    res = memagent("train", "--curriculum", "3:x", "--run-dir", tmp_path / "bad")
    assert res.returncode == 2 and "LENGTH:STEPS" in res.stderr
