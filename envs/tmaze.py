"""The passive T-maze (Ni et al. 2023, *When do transformers shine in RL?*), batched."""

from __future__ import annotations

import numpy as np
from memagent.envs.core import (
    CUE0,
    DOOR0,
    FLOOR,
    JUNCTION,
    MAX_COLOURS,
    RIGHT,
    WALL,
    GridEngine,
    check_int,
)
from memagent.envs.env import GridEnv


def check_length(length) -> tuple[int, int]:
    """``length`` (an int, or a ``(low, high)`` range drawn per episode) as ``(low, high)``."""
    if isinstance(length, (tuple, list)):
        if len(length) != 2:
            raise ValueError(f"length must be an int >= 1 or a (low, high) pair, got {length!r}")
        lo, hi = (check_int("length", v, 1) for v in length)
        if lo > hi:
            raise ValueError(f"length range must have low <= high, got {tuple(length)}")
        return lo, hi
    n = check_int("length", length, 1)
    return n, n


def tmaze_max_steps(length) -> int:
    """Time limit: twice the corridor plus 10 steps of slack (the longest length of a range)."""
    return 2 * check_length(length)[1] + 10


class TMazeEngine(GridEngine):
    """``n_envs`` passive T-mazes stepped together (see :class:`TMazeEnv` for the rules)."""

    def __init__(self, n_envs: int = 1, *, length=10, n_cues: int = 2, penalty: float = 0.0,
                 step_penalty: float | None = None, **kwargs):
        self.length_range = lo, hi = check_length(length)
        self.n_cues = self.n_cue_values = n = check_int("n_cues", n_cues, 2, MAX_COLOURS)
        self.penalty = float(penalty)
        if step_penalty is not None and step_penalty < 0:
            raise ValueError(f"step_penalty must be >= 0 (0 turns shaping off) or None, got {step_penalty}")
        self.step_penalty = step_penalty
        # Map (walls included): corridor row `row`, cells 1..L; the sign (cue) at column 0;
        # the junction at column L. n_cues == 2: doors north and south of the junction (the T);
        # n_cues > 2: a hall of n_cues junction cells at column L with door i east of hall row i.
        self.map_h = 3 if n == 2 else n + 2
        self.map_w = hi + 2
        self.row = 1 if n == 2 else 1 + (n - 1) // 2
        super().__init__(n_envs, **kwargs)
        r = self.pad
        self.templates = np.full((hi - lo + 1, self.hp, self.wp), WALL, dtype=np.uint8)
        for j, L in enumerate(range(lo, hi + 1)):
            m = self.templates[j, r:r + self.map_h, r:r + self.map_w]
            m[self.row, 1:L] = FLOOR
            if n == 2:
                m[1, L] = JUNCTION
                m[0, L], m[2, L] = DOOR0, DOOR0 + 1
            else:
                m[1:n + 1, L] = JUNCTION
                m[1:n + 1, L + 1] = DOOR0 + np.arange(n)
        self.grid[:] = self.templates[0]
        self.lengths = np.arange(lo, hi + 1)
        self.length = np.full(self.n, lo, dtype=np.int64)
        self.cue = np.zeros(self.n, dtype=np.uint8)
        self.cost = np.zeros(self.n, dtype=np.float32)
        self.sign = self.cell_index(self.row, 0)     # where the cue is shown, per world
        self.start = self.cell_index(self.row, 1)

    @property
    def max_steps(self) -> int:
        return tmaze_max_steps(self.length_range)

    def _reset(self, idx):
        m, A = len(idx), self.xp.asarray            # A: host draws -> the engine's arrays
        lo = self.length_range[0]
        length = np.full(m, lo, dtype=np.int64)
        if len(self.lengths) > 1:
            j = self.rng.integers(0, len(self.lengths), m)
            self.grid[idx] = self.templates[A(j)]
            length = lo + j
            self.length[idx] = A(length)
        cue = self.rng.integers(0, self.n_cues, m).astype(np.uint8)
        worlds, queued = self._queued_cues(m)
        cue[worlds] = queued
        self.cue[idx] = A(cue)
        self.flat[self.sign[idx]] = A(CUE0 + cue)
        self.pos[idx] = self.start[idx]
        self.heading[idx] = RIGHT
        cost = 1.0 / length if self.step_penalty is None else np.full(m, self.step_penalty)
        self.cost[idx] = A(cost.astype(np.float32))

    def _step(self, a):
        on_junction = self.xp.take(self.flat, self.pos) == JUNCTION
        tile, moved = self._move(a)
        self.xp.put(self.flat, self.sign, WALL)      # the cue is shown only in the first observation
        chose, success = self._choice(tile, self.n_cues, self.cue)
        reward = self._shaped(self.xp.astype(success, self.xp.float32), a, moved, on_junction, chose, success)
        return reward, chose, success


class TMazeEnv(GridEnv):
    """
    ## Description

    The passive T-maze of Ni et al. (2023): a corridor of ``length`` cells ending at a
    junction. In the **first observation only** a sign on the wall behind the agent shows a
    cue, one of ``n_cues`` colours; at the junction the agent must enter the door of that
    cue. Walking the corridor needs no memory, the choice at the end needs the cue seen
    ``length`` steps earlier: turn ``length`` up to make the memory delay longer.

    With ``n_cues=2`` the maze is a T: door 0 north of the junction, door 1 south. With more
    cues the corridor ends in a hall of ``n_cues`` junction cells (column ``length``), with
    door ``i`` in the east wall beside hall row ``i`` (top to bottom). ``length`` may be a
    ``(low, high)`` pair: the length is then drawn per episode, so counting steps cannot
    replace the junction (``memagent/TMaze-Random-v0``).

    ## Observation

    ``obs_mode="symbolic"``: ``MultiDiscrete`` vector of ``view_size**2 + 1``: the tile ids of the
    egocentric ``view_size x view_size`` window (north up, the agent's cell in the centre;
    ids in :mod:`memagent.envs.render`: floor 0, wall 1, junction 2, cue sign ``5 + i``,
    door ``13 + i``), then the heading (0..3, the last move). ``obs_mode="pixels"``: the same
    window drawn as an ``image_size x image_size x 3`` image (the agent a red triangle).

    ## Action

    ``Discrete(4)``: 0 up (north), 1 right (east), 2 down (south), 3 left (west). Moving into
    a wall leaves the agent where it is.

    ## Rewards

    +1 for entering the door of the cue, ``penalty`` (default 0) for another door. Shaping:
    every step that does not move the agent east costs ``step_penalty`` (default
    ``1 / length``, ``0`` turns it off), except the choosing moves on the junction (into a
    door, or along the hall; bumping a wall or a step back west costs too), so a
    memoryless agent learns to walk the corridor quickly and only the choice needs memory.
    The best return is 1.

    ## Starting state

    The west end of the corridor, heading east; the cue drawn uniformly, or set: a cue value
    is the cue's index (``env.reset(options={"cue": i})``, ``engine.queue_cues``).

    ## Episode end

    Terminates when the agent enters a door (``info["is_success"]`` says whether it was the
    right one; ``is_success`` is in every step's info). Truncation is left to ``TimeLimit``:
    ``2 * length + 10`` steps.

    ## Arguments

    ``length`` (10), ``n_cues`` (2, at most 8), ``penalty`` (0.0), ``step_penalty`` (None:
    ``1 / length``), ``obs_mode`` ("symbolic"), ``view_size`` (3), ``image_size`` (64),
    ``render_mode`` (None, "rgb_array", "human").

    ## Registered configurations

    - ``memagent/TMaze-v0``: ``length=10``
    - ``memagent/TMaze-L25-v0``, ``memagent/TMaze-L100-v0``, ``memagent/TMaze-L1000-v0``
    - ``memagent/TMaze-Random-v0``: ``length=(5, 20)`` drawn per episode
    """

    engine_cls = TMazeEngine
