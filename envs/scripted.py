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
from memagent.envs.core import CUE0, DOOR0, DOWN, JUNCTION, KEY0, MAX_COLOURS, RIGHT, UP


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


class KeyDoorScript(_Script):
    """KeyDoor: read the key north of the start, walk east, sweep the choice column for its door."""

    def __init__(self, n_envs: int, n_colours: int = 3, **kwargs):
        super().__init__(n_envs, **kwargs)
        self.n_colours = n_colours
        self.sweep = np.full(n_envs, UP)

    def __call__(self, obs: np.ndarray, starts: np.ndarray) -> np.ndarray:
        centre, north, south, east, _ = self.cells(obs)
        if starts.any():
            seen = north[starts].astype(np.int64) - KEY0
            self.cue[starts] = seen if self.use_cue else self.rng.integers(0, self.n_colours, starts.sum())
            self.sweep[starts] = UP
        target = DOOR0 + self.cue
        c, k = self.c, self.k
        north_east, south_east = obs[:, c - k + 1], obs[:, c + k + 1]
        at_j = centre == JUNCTION
        self.sweep[at_j & (self.sweep == UP) & (north != JUNCTION)] = DOWN   # top of the column
        self.sweep[at_j & (self.sweep == DOWN) & (south != JUNCTION)] = UP
        a = np.where(at_j, self.sweep, RIGHT)
        a[at_j & (north_east == target)] = UP
        a[at_j & (south_east == target)] = DOWN
        a[at_j & (east == target)] = RIGHT
        return a


class RecallScript(_Script):
    """RecallSequence: note each sign as it passes overhead, answer them in order at the junctions."""

    def __init__(self, n_envs: int, n_items: int = 3, **kwargs):
        super().__init__(n_envs, **kwargs)
        self.items = np.zeros((n_envs, n_items), dtype=np.int64)
        self.seen = np.zeros(n_envs, dtype=np.int64)
        self.answered = np.zeros(n_envs, dtype=np.int64)

    def __call__(self, obs: np.ndarray, starts: np.ndarray) -> np.ndarray:
        centre, north, *_ = self.cells(obs)
        self.seen[starts] = self.answered[starts] = 0
        n_items = self.items.shape[1]
        sign = (north >= CUE0) & (north < CUE0 + MAX_COLOURS) & (self.seen < n_items)
        rows = np.flatnonzero(sign)
        cue = north[rows].astype(np.int64) - CUE0
        self.items[rows, self.seen[rows]] = cue if self.use_cue else self.rng.integers(0, 2, len(rows))
        self.seen[rows] += 1
        at_j = centre == JUNCTION
        answer = self.items[np.arange(len(obs)), np.minimum(self.answered, n_items - 1)]
        self.answered += at_j
        return np.where(at_j, np.where(answer == 0, UP, DOWN), RIGHT)
