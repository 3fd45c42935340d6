"""KeyDoor: remember a key's colour through a corridor of distractors, open its door. Batched."""

from __future__ import annotations

import numpy as np
from memagent.envs.core import (
    DISTRACTOR0,
    DOOR0,
    FLOOR,
    JUNCTION,
    KEY0,
    MAX_COLOURS,
    RIGHT,
    GridEngine,
    check_int,
)
from memagent.envs.env import GridEnv


def keydoor_max_steps(delay: int = 10, n_colours: int = 3) -> int:
    """Time limit: twice the way to the doors, a sweep of the door wall, 10 steps of slack."""
    return 2 * (delay + 3) + 2 * max(3, n_colours) + 10


class KeyDoorEngine(GridEngine):
    """``n_envs`` KeyDoor worlds stepped together (see :class:`KeyDoorEnv`)."""

    def __init__(self, n_envs: int = 1, *, n_colours: int = 3, delay: int = 10,
                 distractor_density: float = 0.3, penalty: float = 0.0,
                 step_penalty: float | None = None, **kwargs):
        self.n_colours = self.n_cue_values = n = check_int("n_colours", n_colours, 2, MAX_COLOURS)
        self.delay = check_int("delay", delay, 1)
        if not 0.0 <= distractor_density <= 1.0:
            raise ValueError(f"distractor_density must be in [0, 1], got {distractor_density}")
        if step_penalty is not None and step_penalty < 0:
            raise ValueError(f"step_penalty must be >= 0 (0 turns shaping off) or None, got {step_penalty}")
        self.density = float(distractor_density)
        self.penalty = float(penalty)
        # Map: rows 1..rows, start column 1 (the key north of the agent), the delay region in
        # columns 2..delay+1, the choice column delay+2 (junction tiles) and the doors in the
        # east wall (column delay+3), one per row from `door_row`.
        self.rows = max(3, n)
        self.map_h, self.map_w = self.rows + 2, self.delay + 4
        self.row = 1 + (self.rows - 1) // 2
        self.door_row = 1 + (self.rows - n) // 2
        super().__init__(n_envs, **kwargs)
        r = self.pad
        m = self.grid[:, r:r + self.map_h, r:r + self.map_w]
        m[:, 1:self.rows + 1, 1:self.delay + 3] = FLOOR
        m[:, 1:self.rows + 1, self.delay + 2] = JUNCTION
        self.region = self.grid[:, r + 1:r + 1 + self.rows, r + 2:r + 2 + self.delay]   # view
        self.doors = self.grid[:, r + self.door_row:r + self.door_row + n, r + self.delay + 3]
        self.key = np.zeros(self.n, dtype=np.uint8)
        self.key_cell = self.cell_index(self.row - 1, 1)
        self.start = self.cell_index(self.row, 1)
        self.cost = np.full(self.n, 1.0 / (self.delay + 3) if step_penalty is None else step_penalty,
                            dtype=np.float32)

    @property
    def max_steps(self) -> int:
        return keydoor_max_steps(self.delay, self.n_colours)

    def _reset(self, idx):
        m, n, rng, A = len(idx), self.n_colours, self.rng, self.xp.asarray
        key = rng.integers(0, n, m).astype(np.uint8)
        worlds, queued = self._queued_cues(m)
        key[worlds] = queued
        self.key[idx] = A(key)
        self.flat[self.key_cell[idx]] = A(KEY0 + key)
        # distractors: balls of the key colours on random cells of the delay region
        balls = DISTRACTOR0 + rng.integers(0, n, (m, self.rows, self.delay))
        on = rng.random((m, self.rows, self.delay)) < self.density
        self.region[idx] = A(np.where(on, balls, FLOOR).astype(np.uint8))
        # doors: the colours in a random order (a random permutation per world)
        self.doors[idx] = A((DOOR0 + np.argsort(rng.random((m, n)), axis=1)).astype(np.uint8))
        self.pos[idx] = self.start[idx]
        self.heading[idx] = RIGHT

    def _step(self, a):
        on_junction = self.xp.take(self.flat, self.pos) == JUNCTION
        tile, moved = self._move(a)
        chose, success = self._choice(tile, self.n_colours, self.key)
        reward = self._shaped(self.xp.astype(success, self.xp.float32), a, moved, on_junction, chose, success)
        return reward, chose, success


class KeyDoorEnv(GridEnv):
    """
    ## Description

    At the start the agent sees a key (north of it) of one of ``n_colours`` colours. It walks
    east through a delay region of ``delay`` columns scattered with balls of the same colours
    (distractors, a new layout every episode) to a choice column, beside an east wall holding
    one door of each colour in a random order. Entering the door of the key's colour wins.
    The key stays where it is, but out of view after the first few steps: the choice needs
    the colour remembered across the delay and the distractors.

    ## Observation

    ``obs_mode="symbolic"``: the egocentric ``view_size x view_size`` tile ids (key ``21 + i``,
    ball ``29 + i``, door ``13 + i``, choice column = junction 2) and the heading;
    ``obs_mode="pixels"``: the same view drawn as an ``image_size x image_size x 3`` image.

    ## Action

    ``Discrete(4)``: 0 up, 1 right, 2 down, 3 left. Walls block; balls and the key do not.

    ## Rewards

    +1 for the key's door, ``penalty`` (0) for another. Shaping: a step that does not move
    east costs ``step_penalty`` (default ``1 / (delay + 3)``), except up, down or east in the
    choice column.

    ## Starting state

    West end, middle row, heading east; key colour, distractors and door order random. The
    key colour is the cue: ``env.reset(options={"cue": i})`` (or ``engine.queue_cues``) sets it.

    ## Episode end

    Terminates when a door is entered (``is_success``); ``TimeLimit`` truncates after
    ``2 * (delay + 3) + 2 * max(3, n_colours) + 10`` steps (42 by default).

    ## Arguments

    ``n_colours`` (3, 2..8), ``delay`` (10), ``distractor_density`` (0.3), ``penalty`` (0.0),
    ``step_penalty`` (None), ``obs_mode``, ``view_size`` (3), ``image_size`` (64), ``render_mode``.

    ## Registered configurations

    - ``memagent/KeyDoor-v0``: 3 colours, delay 10
    """

    engine_cls = KeyDoorEngine
