"""Run ``python -m memagent ...`` as a user would, and the env the CLI tests train on."""

from __future__ import annotations

import os
import subprocess
import sys


def env_vars() -> dict:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", SDL_VIDEODRIVER="dummy",
               SDL_AUDIODRIVER="dummy", PYGAME_HIDE_SUPPORT_PROMPT="1")
    return env


def memagent(*args, cwd=None, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "memagent", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, env=env_vars(), timeout=timeout)


def train_env() -> str:
    """The gridworld once it is registered, CartPole-v1 until then."""
    import gymnasium as gym

    import memagent  # noqa: F401

    return "memagent/TMaze-v0" if "memagent/TMaze-v0" in gym.envs.registry else "CartPole-v1"
