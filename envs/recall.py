"""RecallSequence: pass n cues in order, then answer them at n junctions in the same order. Batched."""

from __future__ import annotations

import numpy as np
from memagent.envs.core import CUE0, DOOR0, FLOOR, GATE, JUNCTION, RIGHT, GridEngine, check_int
from memagent.envs.env import GridEnv


def recall_width(n_items: int, delay: int) -> int:
    return 4 * n_items + delay


def recall_max_steps(n_items: int = 3, delay: int = 5) -> int:
    """Time limit: twice the corridor plus 10 steps of slack."""
    return 2 * recall_width(n_items, delay) + 10


class RecallSequenceEngine(GridEngine):
    """``n_envs`` RecallSequence worlds stepped together (see :class:`RecallSequenceEnv`)."""

    def __init__(self, n_envs: int = 1, *, n_items: int = 3, delay: int = 5, penalty: float = 0.0,
                 step_penalty: float | None = None, **kwargs):
        self.n_items = n = check_int("n_items", n_items, 1, 8)
        self.n_cue_values = 2 ** n  # the items, read as the binary digits of the cue value
        self.delay = check_int("delay", delay, 0)
        if step_penalty is not None and step_penalty < 0:
            raise ValueError(f"step_penalty must be >= 0 (0 turns shaping off) or None, got {step_penalty}")
        self.penalty = float(penalty)
        # Map (3 rows): corridor row 1 from column 1; cue i on the north wall above column
        # 1 + 2i; junction j at column x_j = 2n + delay + 2j with door 0 north, door 1 south
        # and a gate east of it (a correct choice takes the agent through the gate to x_j + 2).
        self.map_h, self.map_w = 3, recall_width(n, self.delay)
        self.x0 = 2 * n + self.delay
        super().__init__(n_envs, **kwargs)
        r = self.pad
        m = self.grid[:, r:r + 3, r:r + self.map_w]
        m[:, 1, 1:self.x0] = FLOOR
        for j in range(n):
            x = self.x0 + 2 * j
            m[:, 1, x] = JUNCTION
            m[:, 0, x], m[:, 2, x] = DOOR0, DOOR0 + 1
            if j < n - 1:
                m[:, 1, x + 1] = GATE
        self.signs = self.cell_index(0, 1 + 2 * np.arange(n)[None, :], env=np.arange(self.n)[:, None])
        self.items = np.zeros((self.n, n), dtype=np.uint8)
        self.stage = np.zeros(self.n, dtype=np.int64)      # junctions passed
        self._worlds = np.arange(self.n)
        self.start = self.cell_index(1, 1)
        self.cost = np.full(self.n, 1.0 / self.x0 if step_penalty is None else step_penalty,
                            dtype=np.float32)

    @property
    def max_steps(self) -> int:
        return recall_max_steps(self.n_items, self.delay)

    def _reset(self, idx):
        items = self.rng.integers(0, 2, (len(idx), self.n_items)).astype(np.uint8)
        worlds, queued = self._queued_cues(len(idx))  # cue value: the items as binary digits
        items[worlds] = (queued[:, None] >> np.arange(self.n_items - 1, -1, -1)) & 1
        self.items[idx] = self.xp.asarray(items)
        self.flat[self.signs[idx]] = self.xp.asarray(CUE0 + items)
        self.stage[idx] = 0
        self.pos[idx] = self.start[idx]
        self.heading[idx] = RIGHT

    def _step(self, a):
        on_junction = self.xp.take(self.flat, self.pos) == JUNCTION
        tile, moved = self._move(a)
        stage = self.xp.minimum(self.stage, self.n_items - 1)
        chose, right = self._choice(tile, 2, self.items[self._worlds, stage])
        self.stage += right
        success = self.stage == self.n_items
        terminated = (chose & ~right) | success
        through = right & ~success                         # through the gate, to the next junction
        self.pos[through] += 2 - self.delta[a[through]]    # back out of the door, then 2 east
        reward = self.xp.astype(right, self.xp.float32) * np.float32(1.0 / self.n_items).item()
        reward = self._shaped(reward, a, moved, on_junction, chose, right)
        return reward, terminated, success


class RecallSequenceEnv(GridEnv):
    """
    ## Description

    Multi-item recall. The agent walks east along a corridor past ``n_items`` signs on the
    north wall (one every other cell), each showing one of two cues. After ``delay`` more
    cells come ``n_items`` junctions, one after another: at junction ``j`` the agent must
    enter door 0 (north) if cue ``j`` was 0 and door 1 (south) if it was 1. A correct door
    opens the gate east of the junction and the agent steps through it to the next junction;
    a wrong door ends the episode. The cues must be recalled in the order they were seen.

    ## Observation

    ``obs_mode="symbolic"``: the egocentric ``view_size x view_size`` tile ids (sign ``5 + cue``,
    junction 2, gate 3, door ``13 + i``) and the heading; ``obs_mode="pixels"``: the same view
    drawn as an ``image_size x image_size x 3`` image.

    ## Action

    ``Discrete(4)``: 0 up, 1 right, 2 down, 3 left. Walls and closed gates block.

    ## Rewards

    ``1 / n_items`` per correct door (1 in all), ``penalty`` (0) for a wrong one. Shaping: a
    step that does not move east costs ``step_penalty`` (default ``1 / (2 * n_items + delay)``),
    except the choosing moves (up, down) on a junction.

    ## Starting state

    West end of the corridor (under sign 0), heading east; the cues drawn uniformly, or set
    by a cue value ``v`` in ``0 .. 2 ** n_items - 1`` whose binary digits are the cues, item 0
    the most significant (``env.reset(options={"cue": v})``, ``engine.queue_cues``).

    ## Episode end

    Terminates after the last junction (``is_success``) or at a wrong door; ``TimeLimit``
    truncates after ``2 * (4 * n_items + delay) + 10`` steps (44 by default). A policy that
    ignores the cues succeeds with probability ``2 ** -n_items``.

    ## Arguments

    ``n_items`` (3, 1..8), ``delay`` (5), ``penalty`` (0.0), ``step_penalty`` (None),
    ``obs_mode``, ``view_size`` (3), ``image_size`` (64), ``render_mode``.

    ## Registered configurations

    - ``memagent/RecallSequence-v0``: 3 items, delay 5
    """

    engine_cls = RecallSequenceEngine
