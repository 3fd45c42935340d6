"""User mistakes: one line on stderr, exit status 2, no traceback."""

from __future__ import annotations

import json

import pytest

from .helpers import memagent


def one_line_error(res, command: str) -> str:
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert "Traceback" not in res.stderr
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith(f"memagent {command}: error: ")
    return lines[0]


def test_unknown_env_lists_the_known_ones():
    line = one_line_error(memagent("train", "--env", "NoSuchEnv-v9", "--agent", "ppo"), "train")
    assert "unknown env 'NoSuchEnv-v9'" in line and "CartPole-v1" in line


def test_unknown_agent_lists_the_known_ones():
    line = one_line_error(memagent("train", "--agent", "nosuch"), "train")
    assert "unknown agent 'nosuch'" in line
    for name in ("memory-ppo", "ppo", "dqn", "man"):
        assert name in line


def test_an_sb3_algorithm_that_cannot_take_the_env(tmp_path):
    line = one_line_error(memagent("train", "--agent", "sac", "--run-dir", tmp_path / "r"), "train")
    assert "sac on memagent/TMaze-v0" in line and "action spaces" in line
    assert not (tmp_path / "r").exists()  # a failed start leaves no run folder


@pytest.mark.parametrize("command", ["eval", "render"])
def test_missing_run_folder(tmp_path, command):
    extra = ["--out", str(tmp_path / "x.gif")] if command == "render" else []
    line = one_line_error(memagent(command, tmp_path / "nope", *extra), command)
    assert "does not exist" in line


def test_folder_that_is_not_a_run(tmp_path):
    line = one_line_error(memagent("eval", tmp_path), "eval")
    assert "is not a run folder" in line
    line = one_line_error(memagent("train", "--resume", tmp_path), "train")
    assert "is not a run folder" in line


def test_config_with_an_unknown_key(tmp_path):
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"total_timesteps": 100, "learning_rat": 0.1}))
    line = one_line_error(memagent("train", "--agent", "ppo", "--config", cfg), "train")
    assert "unknown key 'learning_rat'" in line and "agent_kwargs" in line


def test_config_with_a_wrong_type(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('total_timesteps = "lots"\n')
    line = one_line_error(memagent("train", "--agent", "ppo", "--config", cfg), "train")
    assert "'total_timesteps' must be int" in line and "'lots'" in line


def test_config_that_does_not_parse(tmp_path):
    cfg = tmp_path / "c.json"
    cfg.write_text("{not json")
    assert "does not parse" in one_line_error(memagent("train", "--config", cfg), "train")


def test_memory_flag_for_an_agent_without_memory():
    line = one_line_error(memagent("train", "--env", "CartPole-v1", "--agent", "ppo",
                                   "--memory", "lstm"), "train")
    assert "--memory only applies to the memory-ppo and man agents" in line


def test_resume_refuses_a_new_config(tmp_path):
    line = one_line_error(memagent("train", "--resume", tmp_path, "--agent", "ppo"), "train")
    assert "--resume keeps the run's config" in line


def test_mp4_without_ffmpeg_and_bad_suffix(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    line = one_line_error(memagent("render", tmp_path, "--out", tmp_path / "a.avi"), "render")
    assert ".gif" in line


def test_misspelt_algorithm_argument_and_bad_device(tmp_path):
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"agent_kwargs": {"learning_rat": 0.1}}))
    line = one_line_error(memagent("train", "--agent", "ppo", "--steps", 64, "--config", cfg,
                                   "--run-dir", tmp_path / "run"), "train")
    assert "learning_rat" in line and "agent_kwargs" in line
    line = one_line_error(memagent("train", "--device", "gpu"), "train")
    assert "--device must be auto, cpu or cuda" in line
