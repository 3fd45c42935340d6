"""The gymnasium ``Env`` view of a batched engine: the engine with ``n_envs=1``."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from memagent.envs.core import GridEngine, check_choice

RENDER_MODES = (None, "rgb_array", "human")


class GridEnv(gym.Env):
    """A single world: ``engine_cls(1, **kwargs)`` behind gymnasium's API.

    Subclasses set ``engine_cls`` and carry the Markdown docstring of their world. Every
    step's ``info`` has ``is_success`` (True only on the step that solves the task) plus the
    engine's per-world info (``state_id`` for Screens).
    """

    metadata = {"render_modes": ["rgb_array", "human"], "render_fps": 8}
    engine_cls: type[GridEngine]
    render_tile_size = 16   # pixels per cell in render()

    def __init__(self, render_mode: str | None = None, **kwargs):
        self.render_mode = check_choice("render_mode", render_mode, RENDER_MODES)
        self.engine = self.engine_cls(1, **kwargs)
        self.observation_space = self.engine.observation_space
        self.action_space = self.engine.action_space
        self._viewer = None

    def _info(self, success: bool | None = None) -> dict:
        info = {name: int(v[0]) for name, v in self.engine.info_arrays().items()}
        if success is not None:
            info["is_success"] = success
        return info

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """gymnasium's ``reset``; ``options={"cue": c}`` sets the episode's cue in worlds that
        have one (``engine.n_cue_values > 0``; see the world's Starting state)."""
        super().reset(seed=seed)
        self.engine.rng = self.np_random     # the engine draws from the env's generator
        if options and options.get("cue") is not None:
            self.engine.queue_cues([options["cue"]])
        self.engine.reset()
        if self.render_mode == "human":
            self.render()
        return self.engine.observe()[0], self._info()

    def step(self, action):
        a = np.asarray(action)
        if a.size != 1:
            raise ValueError(f"action must be one integer in 0..{self.engine.n_actions - 1}, got {action!r}")
        reward, terminated, success = self.engine.step(a.reshape(1))
        if self.render_mode == "human":
            self.render()
        return (self.engine.observe()[0], float(reward[0]), bool(terminated[0]), False,
                self._info(bool(success[0])))

    def render(self):
        if self.render_mode is None:
            gym.logger.warn("render() called without a render_mode; pass render_mode='rgb_array' "
                            "or 'human' to the constructor")
            return None
        frame = self.engine.render_frame(0, self.render_tile_size)
        if self.render_mode == "rgb_array":
            return frame
        if self._viewer is None:
            from memagent.envs.render import Viewer

            self._viewer = Viewer(type(self).__name__, scale=2)
        self._viewer.show(frame)
        return None

    def close(self):
        if self._viewer is not None:
            self._viewer.close()
            self._viewer = None
