"""Presets are data (YAML per agent, keyed by env id); the user's values win; files are checked."""

from __future__ import annotations

import pytest
import yaml
from memagent.agents.sb3_adapter import algo_kwargs

from memagent.config import (
    PRESET_DIR,
    TrainConfig,
    build_config,
    load_config_file,
    load_presets,
    preset_for,
    resolve,
)


def test_default_run_is_hopfield_memory_ppo_on_tmaze():
    config = resolve(TrainConfig(), set())
    assert (config.env_id, config.agent, config.memory) == ("memagent/TMaze-v0", "memory-ppo", "hopfield")
    assert config.total_timesteps == load_presets("memory-ppo")["memagent/TMaze-v0"]["total_timesteps"]
    assert config.agent_kwargs["n_steps"] == 128
    assert config.agent_kwargs["learning_rate"] == "lin_6e-4"  # the default under the env preset


def test_long_delay_presets_roll_out_256_steps_and_a_flag_wins():
    # the cue and the choice ~100 steps apart: the rollout (the truncated-BPTT length) is 256
    config = build_config({"env_id": "memagent/TMaze-L100-v0"})
    assert (config.agent_kwargs["n_steps"], config.agent_kwargs["batch_size"]) == (256, None)
    assert config.agent_kwargs["n_epochs"] == 10  # the rest merged from the default, key by key
    assert config.agent_kwargs["normalize_advantage"] == "center"
    config = build_config({"env_id": "memagent/TMaze-L100-v0", "agent_kwargs.n_steps": 128,
                           "agent_kwargs.batch_size": 512})
    assert (config.agent_kwargs["n_steps"], config.agent_kwargs["batch_size"]) == (128, 512)


def test_every_shipped_preset_file_is_valid_and_keyed_by_env():
    files = sorted(PRESET_DIR.glob("*.yml"))
    assert {f.stem for f in files} >= {"memory-ppo", "ppo", "dqn", "man"}
    for f in files:
        table = load_presets(f.stem)  # raises on an unknown key or a wrong type
        assert "default" in table
        for env_id in set(table) - {"default"}:
            build_config({"agent": f.stem, "env_id": env_id})  # each preset passes the agent's checks


def test_merge_order_default_env_file_flags(tmp_path):
    assert preset_for("dqn", "memagent/TMaze-v0")["total_timesteps"] == 12_000  # env over default
    assert preset_for("dqn", "memagent/TMaze-v0")["agent_kwargs"]["gamma"] == 0.9  # default kept
    path = tmp_path / "mine.yml"
    path.write_text("agent: ppo\ntotal_timesteps: 123\nagent_kwargs:\n  learning_rate: 0.1\n")
    values = load_config_file(path)
    config = build_config({**values, "total_timesteps": 7})  # a flag over the file
    assert config.total_timesteps == 7
    assert config.agent_kwargs["learning_rate"] == 0.1 and config.agent_kwargs["n_steps"] == 128


def test_dotted_keys_reach_into_dicts():
    config = build_config({"agent": "ppo", "agent_kwargs.n_steps": 32})
    assert config.agent_kwargs["n_steps"] == 32 and config.agent_kwargs["batch_size"] == 256
    with pytest.raises(ValueError, match="unknown key 'learning_rate'"):
        build_config({"learning_rate": 1e-3})
    with pytest.raises(ValueError, match="agent_kwargs for ppo: unknown 'learnin_rate'"):
        build_config({"agent": "ppo", "agent_kwargs.learnin_rate": 1e-3})
    with pytest.raises(ValueError, match="the 'hopfield' core: it has no parameter 'capcity'"):
        build_config({"memory_kwargs.capcity": 8})


def test_linear_schedule_strings():
    kwargs = algo_kwargs({"learning_rate": "lin_1e-3", "n_steps": 8})
    assert kwargs["n_steps"] == 8 and kwargs["learning_rate"](0.5) == pytest.approx(5e-4)
    with pytest.raises(ValueError, match="lin_"):
        algo_kwargs({"learning_rate": "lin_fast"})


@pytest.mark.parametrize("suffix, text", [
    (".toml", 'agent = "ppo"\nseed = 4\n[agent_kwargs]\nn_steps = 32\n'),
    (".yml", "agent: ppo\nseed: 4\nagent_kwargs:\n  n_steps: 32\n"),
    (".json", '{"agent": "ppo", "seed": 4, "agent_kwargs": {"n_steps": 32}}'),
])
def test_config_files_in_three_formats(tmp_path, suffix, text):
    path = tmp_path / f"c{suffix}"
    path.write_text(text)
    assert load_config_file(path) == {"agent": "ppo", "seed": 4, "agent_kwargs": {"n_steps": 32}}


def test_config_file_types_are_checked(tmp_path):
    path = tmp_path / "c.yml"
    path.write_text("seed: true\n")  # bool is not an int here
    with pytest.raises(ValueError, match="'seed' must be int"):
        load_config_file(path)
    path.write_text("- a list\n")
    with pytest.raises(ValueError, match="must hold a mapping"):
        load_config_file(path)


def test_registry_and_any_sb3_algorithm():
    from memagent.agent import agent_names, get_agent

    assert set(agent_names()) >= {"memory-ppo", "ppo", "dqn", "man"}
    assert get_agent("a2c").model_class().__name__ == "A2C"  # named, not registered
    assert get_agent("stable_baselines3:A2C").model_class().__name__ == "A2C"
    with pytest.raises(ValueError, match="unknown agent 'nosuch'; known agents: memory-ppo, ppo, dqn, man"):
        get_agent("nosuch")


def test_curriculum_checks_name_the_fix():
    def resolve_(**kw):
        return resolve(TrainConfig(**kw), set(kw))

    with pytest.raises(ValueError, match="pass --steps above 150"):
        resolve_(curriculum=[[10, 50], [100, 100]], total_timesteps=150)
    with pytest.raises(ValueError, match="no length argument"):
        resolve_(env_id="memagent/KeyDoor-v0", curriculum=[[3, 10]], total_timesteps=100)
    with pytest.raises(ValueError, match="not a memagent env"):
        resolve_(env_id="CartPole-v1", agent="ppo", curriculum=[[3, 10]], total_timesteps=100)
    with pytest.raises(ValueError, match="normalize"):
        resolve_(curriculum=[[3, 10]], total_timesteps=100, normalize=True)
    with pytest.raises(ValueError, match=r"stage 0 must be \[length, steps\]"):
        resolve_(curriculum=[[3]], total_timesteps=100)
    assert resolve_(curriculum=[[3, 10]], total_timesteps=100).curriculum == [[3, 10]]
    assert resolve_().curriculum == []  # TMaze-v0's default run has none
    assert resolve_(env_id="memagent/TMaze-L1000-v0").curriculum == [[10, 60000], [100, 100000]]


def test_memory_ppo_presets_are_its_defaults_and_budgets():
    """One set of hyperparameters for every core and maze: the preset's defaults are
    MemoryPPO's own, and an env preset sets only the budget and how it is spent (a T-maze
    curriculum), for an env whose returns are far from unit scale, reward normalisation
    (``normalize``, rl-zoo's per-env key: a property of the env, the same for every core),
    and for an env whose cue and choice lie far apart, the rollout's length (``n_steps``, the
    truncated-BPTT length, with a ``batch_size`` of whole sequences); it never changes any
    other hyperparameter or a core."""
    import inspect

    from memagent.agents.memory_ppo import MemoryPPO
    from memagent.agents.sb3_adapter import algo_kwargs

    mppo = yaml.safe_load((PRESET_DIR / "memory-ppo.yml").read_text())
    signature = inspect.signature(MemoryPPO).parameters
    for key, value in algo_kwargs(mppo["default"]["agent_kwargs"]).items():
        default = signature[key].default
        if callable(default):  # a schedule (learning rate, entropy bonus): compare its values
            assert callable(value), key
            assert [value(p) for p in (1.0, 0.5, 0.0)] == pytest.approx(
                [default(p) for p in (1.0, 0.5, 0.0)]), key
        else:
            assert value == default, key
    assert [signature["learning_rate"].default(p) for p in (1.0, 0.5, 0.0)] == pytest.approx([6e-4, 3e-4, 0.0])
    assert [signature["ent_coef"].default(p) for p in (1.0, 0.5, 0.0)] == pytest.approx([0.003, 0.0015, 0.0])
    assert "memory_kwargs" not in mppo["default"]
    for env_id, preset in mppo.items():
        if env_id != "default":
            assert set(preset) <= {"total_timesteps", "n_envs", "curriculum", "normalize",
                                   "agent_kwargs"}, env_id
            assert preset.get("normalize", True) is True, env_id  # only ever switched on
            assert set(preset.get("agent_kwargs", {})) <= {"n_steps", "batch_size"}, env_id
    dqn = preset_for("dqn", "memagent/TMaze-v0")
    assert dqn["memory_kwargs"] == dict(window=16, embed_dim=32, hidden_dim=32)
    assert dqn["agent_kwargs"]["policy_kwargs"] == {"net_arch": [64]}


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


def test_a_broken_preset_file_names_the_file_the_env_and_the_key(tmp_path, monkeypatch):
    from memagent import config

    monkeypatch.setattr(config, "PRESET_DIR", tmp_path)
    (tmp_path / "ppo.yml").write_text("memagent/TMaze-v0:\n  total_timestep: 10\n")
    with pytest.raises(ValueError, match=r"ppo.yml' \[memagent/TMaze-v0\]: unknown key 'total_timestep'"):
        build_config({"agent": "ppo"})
    (tmp_path / "ppo.yml").write_text("default:\n  n_envs: many\n")
    with pytest.raises(ValueError, match="'n_envs' must be int or null, got str 'many'"):
        build_config({"agent": "ppo"})


def test_recurrent_ppo_trains_on_a_symbolic_gridworld(tmp_path):
    """sb3-contrib's RecurrentPPO by name: its own policy name (MlpLstmPolicy) and SB3's one-hot
    of the MultiDiscrete observation with an int width (torch's LSTM rejects numpy ints)."""
    import json

    from memagent.cli import main

    run_dir = tmp_path / "rppo"
    assert main(["train", "--agent", "recurrentppo", "--steps", "64", "--n-envs", "2",
                 "--set", "agent_kwargs.n_steps=16", "--set", "agent_kwargs.batch_size=32",
                 "--set", "agent_kwargs.policy_kwargs.lstm_hidden_size=8",
                 "--run-dir", str(run_dir), "--no-progress"]) == 0
    assert json.loads((run_dir / "state.json").read_text())["status"] == "completed"
    from sb3_contrib import RecurrentPPO

    model = RecurrentPPO.load(run_dir / "model.zip", device="cpu")
    assert model.policy.lstm_actor.input_size == 9 * 37 + 4  # the one-hot width, as an int
