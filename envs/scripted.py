"""Scripted policies that read only symbolic observations, batched over worlds.

They show what each world asks of memory: with ``use_cue=True`` the policy remembers the cue
from the observations and solves every episode; with ``use_cue=False`` it does everything the
same but guesses the cue, and succeeds at chance. The tests and the docs use them.

Call ``policy(obs, starts)`` with a batch of symbolic observations ``(N, k*k+1)`` and a bool
``(N,)`` marking the observations that start an episode (all True after ``reset()``; the
VecEnv's ``dones`` after a step); it returns the actions ``(N,)``.
"""

from __future__ import annotations

import numpy as np
from memagent.envs.core import CUE0, DOOR0, DOWN, JUNCTION, MAX_COLOURS, RIGHT, UP


class _Script:
    def __init__(self, n_envs: int, view_size: int = 3, use_cue: bool = True, seed: int | None = None):
        self.k, self.use_cue = view_size, use_cue
        self.rng = np.random.default_rng(seed)
        self.c = view_size * view_size // 2                 # the agent's cell in the flat view
        self.cue = np.zeros(n_envs, dtype=np.int64)

    def cells(self, obs):
        """centre, north, south, east, west tiles of each view."""
        c, k = self.c, self.k
        return obs[:, c], obs[:, c - k], obs[:, c + k], obs[:, c + 1], obs[:, c - 1]


class TMazeScript(_Script):
    """TMaze: read the cue on the sign west of the start, walk east, enter its door."""

    def __init__(self, n_envs: int, n_cues: int = 2, **kwargs):
        super().__init__(n_envs, **kwargs)
        self.n_cues = n_cues

    def __call__(self, obs: np.ndarray, starts: np.ndarray) -> np.ndarray:
        centre, north, south, east, west = self.cells(obs)
        if starts.any():
            seen = west[starts].astype(np.int64) - CUE0
            self.cue[starts] = seen if self.use_cue else self.rng.integers(0, self.n_cues, starts.sum())
        target = DOOR0 + self.cue
        a = np.full(len(obs), RIGHT)
        at_j = centre == JUNCTION
        east_door = (east >= DOOR0) & (east < DOOR0 + MAX_COLOURS)
        a[at_j & east_door & (target < east)] = UP          # hall: doors are numbered top to bottom
        a[at_j & east_door & (target > east)] = DOWN
        a[at_j & (north == target)] = UP
        a[at_j & (south == target)] = DOWN
        return a
