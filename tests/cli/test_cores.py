"""One registry of memory cores: built-ins found, a core from a test module trains from the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import env_vars


def _memagent(*args, cwd=None):
    env = env_vars()
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parent), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-m", "memagent", *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=300, cwd=cwd)


def test_builtin_cores_register_themselves_with_their_parameters():
    from memagent.memory.core import check_memory_kwargs, core_names, get_core

    assert core_names() == ["gru", "hopfield", "lstm", "nmn"]
    hopfield = get_core("hopfield")
    assert hopfield.width == "output_dim" and hopfield.params()["capacity"].default == 1024
    assert "window of stored steps" in hopfield.params()["capacity"].doc
    with pytest.raises(ValueError, match="no parameter 'hidden'; its memory_kwargs are hidden_size, num_layers, keep_bias"):
        check_memory_kwargs("gru", {"hidden": 3})


def test_no_import_cycle_between_the_core_modules():
    """Each core module imports on its own, in a fresh interpreter, first."""
    for module in ("memagent.memory.episodic", "memagent.memory.recurrent", "memagent.memory.core"):
        subprocess.run([sys.executable, "-c", f"import {module}"], check=True, env=env_vars())
    src = Path(__file__).parents[2] / "memagent" / "memory" / "recurrent.py"
    assert "episodic" not in src.read_text().split('"""', 2)[2]  # no import of episodic in the code


def test_register_twice_under_one_name_is_refused():
    from memagent.memory.core import MemoryCore, register_core

    with pytest.raises(ValueError, match="already registered"):
        register_core("gru")(type("Other", (MemoryCore,), {}))
    with pytest.raises(ValueError, match="needs a MemoryCore subclass"):
        register_core("x")(int)


def test_a_core_from_a_test_module_trains_evaluates_and_is_listed(tmp_path):
    run_dir = tmp_path / "run"
    res = _memagent("train", "--memory", "toy_core:toy", "--set", "memory_kwargs.hidden_size=6",
                    "--steps", 256, "--n-envs", 2, "--set", "agent_kwargs.n_steps=64",
                    "--set", "agent_kwargs.batch_size=64", "--run-dir", run_dir, "--no-progress")
    assert res.returncode == 0, res.stderr
    assert json.loads((run_dir / "config.json").read_text())["memory"] == "toy_core:toy"
    res = _memagent("eval", run_dir, "--episodes", 4)
    assert res.returncode == 0, res.stderr
    assert "4 episodes" in res.stdout and "success rate" in res.stdout  # the core rebuilt by name
    res = _memagent("train", "--memory", "toy_core:toy", "--set", "memory_kwargs.size=6", "--run-dir", tmp_path / "x")
    assert res.returncode == 2 and "no parameter 'size'; its memory_kwargs are hidden_size" in res.stderr
    res = _memagent("cores")
    assert res.returncode == 0 and "hopfield" in res.stdout and "capacity=1024" in res.stdout
