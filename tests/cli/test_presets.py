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
