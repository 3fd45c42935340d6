"""Screens: the gridworld of Memory Association Networks §4.2, batched.

MAN collects screens from a Q-learning agent and stores, for each state number, the
distribution of its screens. This world gives exactly that: a small room whose state is
(position, direction), ``info["state_id"]`` on every step, and rendered screens that vary
within a state (distractor objects of random colours, shifts of a few pixels, pixel noise).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from memagent.envs.core import (
    DIRECTIONS,
    FLOOR,
    GOAL,
    RIGHT,
    GridEngine,
    check_int,
)
from memagent.envs.env import GridEnv
from memagent.envs.render import AGENT_COLOUR, PALETTE, WALL_COLOUR, triangle_mask

TURN = np.array([3, 1, 0], dtype=np.uint8)   # heading change of: turn left, turn right, forward
BACKGROUND = (12, 12, 12)
ROOM_FLOOR, GOAL_COLOUR = (40, 40, 40), (40, 190, 70)


@lru_cache(maxsize=8)
def screen_tables(width: int, height: int, shift: int, noise: int, s: int) -> dict:
    """Everything a Screens engine draws from, built once per room shape (deterministic)."""
    n_positions, map_h, map_w = width * height, height + 2, width + 2
    n_states = 4 * n_positions
    ts = min((s - 2 * shift) // map_w, (s - 2 * shift) // map_h)
    if ts < 6:
        raise ValueError(f"image_size {s} is too small for a {width}x{height} room; "
                         "use a larger image_size or a smaller room")
    origin = ((s - ts * map_h) // 2, (s - ts * map_w) // 2)
    ps = s + 2 * shift                                   # padded canvas
    lo = noise                                          # keep colours in [noise, 255 - noise]
    clip = lambda c: np.clip(np.asarray(c), lo, 255 - lo).astype(np.uint8)  # noqa: E731
    room = np.empty((ps, ps, 3), dtype=np.uint8)
    room[:] = clip(BACKGROUND)
    oy, ox = origin[0] + shift, origin[1] + shift
    for row in range(map_h):
        for col in range(map_w):
            inside = 0 < row <= height and 0 < col <= width
            colour = ROOM_FLOOR if inside else WALL_COLOUR
            if (row, col) == (height, width):
                colour = GOAL_COLOUR
            cell = room[oy + row * ts:oy + (row + 1) * ts, ox + col * ts:ox + (col + 1) * ts]
            cell[:] = clip(colour)
            cell[0, :] = cell[:, 0] = clip(np.asarray(colour) * 0.7)      # cell border
    canvases = np.repeat(room[None], n_states, axis=0)
    for sid in range(n_states):
        d, p = divmod(sid, n_positions)
        row, col = divmod(p, width)
        y, x = oy + (row + 1) * ts, ox + (col + 1) * ts
        canvases[sid, y:y + ts, x:x + ts][triangle_mask(ts, d)] = clip(AGENT_COLOUR)
    # Pixel rows of every screen, ready to gather: (V noise variants, 2*shift+1 column
    # shifts, S states, ps canvas rows, s*3 bytes). A screen is one take of s rows: the
    # row shift and column shift of the screen, a noise variant drawn per row.
    shifts = 2 * shift + 1
    bank_rng = np.random.default_rng(12345)             # a fixed bank; rows drawn per screen
    v = int(np.clip(2 ** 24 // (shifts * canvases.size), 1, 4)) if noise else 1
    rows = np.empty((v, shifts, n_states, ps, s * 3), dtype=np.uint8)
    for dx in range(shifts):
        rows[:, dx] = canvases[:, :, dx:dx + s].reshape(n_states, ps, s * 3)
    if noise:
        jitter = bank_rng.integers(-noise, noise + 1, rows.shape, dtype=np.int16)
        rows[:] = (rows + jitter).astype(np.uint8)       # no wrap: colours kept in range
    rows = rows.reshape(-1, s * 3)
    # 1024 patterns of a noise variant per screen row, as row offsets into the table
    variant_stride = shifts * n_states * ps
    variant_rows = bank_rng.integers(0, v, (1024, s)) * variant_stride + np.arange(s)
    # distractors: d x d squares of palette colours on the floor, never on the agent's cell
    d = max(2, ts // 3)
    dy, dx = np.divmod(np.arange(d * d), d)
    dmask = (dy * s + dx).astype(np.int64)
    pixel = np.dtype((np.void, 3))
    dcolours_rgb = np.array([clip(c) for c in PALETTE], dtype=np.uint8)
    dcolours = dcolours_rgb.view(pixel)[:, 0]
    rows_, cols_ = np.divmod(np.arange(n_positions), width)
    cell_pixel = (origin[0] + (rows_ + 1) * ts) * s + origin[1] + (cols_ + 1) * ts
    tables = {"tile_px": ts, "origin": origin, "n_variants": v, "_canvas": canvases,
              "_canvas_size": ps, "_rows": rows, "_variant_rows": variant_rows, "_dsize": d,
              "_dmask": dmask, "_pixel": pixel, "_dcolours": dcolours, "_dcolours_rgb": dcolours_rgb,
              "_cell_pixel": cell_pixel}
    for value in tables.values():
        if isinstance(value, np.ndarray):
            value.flags.writeable = False
    return tables


class ScreensEngine(GridEngine):
    """``n_envs`` Screens worlds (see :class:`ScreensEnv`)."""

    n_actions = 3
    action_names = ("turn left", "turn right", "forward")
    default_obs_mode = "pixels"
    host_arrays = ("_bounds", "_canvas")   # the draws' bounds; canonical screens

    def __init__(self, n_envs: int = 1, *, width: int = 4, height: int = 3,
                 random_start: bool = False, n_distractors: int = 3, shift: int = 2,
                 noise: int = 8, **kwargs):
        self.width = check_int("width", width, 2, 8)
        self.height = check_int("height", height, 1, 8)
        self.n_distractors = check_int("n_distractors", n_distractors, 0, 16)
        self.shift = check_int("shift", shift, 0, 4)
        self.noise = check_int("noise", noise, 0, 32)
        self.random_start = bool(random_start)
        self.n_positions = self.width * self.height
        self.n_directions = 4
        self.n_states = self.n_positions * self.n_directions
        self.goal = self.n_positions - 1              # bottom-right corner
        self.map_h, self.map_w = self.height + 2, self.width + 2
        super().__init__(n_envs, **kwargs)
        r = self.pad
        self.grid[:, r + 1:r + 1 + self.height, r + 1:r + 1 + self.width] = FLOOR
        self.grid[:, r + self.height, r + self.width] = GOAL
        rows, cols = np.divmod(np.arange(self.n_positions), self.width)
        self._positions = (rows + 1 + r) * self.wp + (cols + 1 + r)   # flat offset of each position
        self._turn = TURN
        self._screens_setup()

    @property
    def max_steps(self) -> int:
        return 100

    # -- state ----------------------------------------------------------------------------
    def position(self, idx=None) -> np.ndarray:
        """Position number ``row * width + col`` of the agent (0 top-left)."""
        r, c = self.agent_rc(idx)
        return (r - 1) * self.width + (c - 1)

    def state_id(self, idx=None) -> np.ndarray:
        """``direction * n_positions + position`` (direction 0 north, 1 east, 2 south, 3 west)."""
        heading = self.heading if idx is None else self.heading[idx]
        return self.xp.astype(heading, self.xp.int64) * self.n_positions + self.position(idx)

    def info_arrays(self) -> dict[str, np.ndarray]:
        return {"state_id": self.state_id()}

    def _reset(self, idx):
        m, A = len(idx), self.xp.asarray
        if self.random_start:
            p = self.rng.integers(0, self.n_positions - 1, m)      # any cell but the goal
            self.heading[idx] = A(self.rng.integers(0, 4, m).astype(np.uint8))
        else:
            p = np.zeros(m, dtype=np.int64)
            self.heading[idx] = RIGHT
        self.pos[idx] = self.base[idx] + self._positions[A(p)]

    def _step(self, a):
        xp = self.xp
        heading = (self.heading + self._turn[a]) & 3
        self.heading[:] = heading
        forward = a == 2
        target = self.pos + xp.take(self.delta, heading) * forward
        tile = xp.take(self.flat, target)
        xp.copyto(self.pos, target, where=xp.take(self._passable, tile))
        success = forward & (tile == GOAL)
        return xp.astype(success, xp.float32), success, success

    # -- screens --------------------------------------------------------------------------
    def _screens_setup(self) -> None:
        tables = screen_tables(self.width, self.height, self.shift, self.noise, self.image_size)
        self.__dict__.update(tables)   # read-only arrays shared by every engine of this shape
        self._bounds = np.array([2 * self.shift + 1] * 2 + [len(self._variant_rows)]
                                + [self.n_positions - 1] * self.n_distractors
                                + [self.tile_px - self._dsize] * (2 * self.n_distractors)
                                + [len(self._dcolours)] * self.n_distractors)

    def canonical_screen(self, state_id: int) -> np.ndarray:
        """The noise-free screen of a state: no shift, no distractors, no noise."""
        sid = check_int("state_id", state_id, 0, self.n_states - 1)
        k, s = self.shift, self.image_size
        return self._canvas[sid, k:k + s, k:k + s].copy()

    def observe(self, idx=None, out=None) -> np.ndarray:
        if self.obs_mode == "symbolic":
            return super().observe(idx, out)
        return self.screens(self.state_id(idx), self.rng, out)

    def screens(self, state_ids: np.ndarray, rng: np.random.Generator,
                out: np.ndarray | None = None) -> np.ndarray:
        """Random screens of the given states, ``(M, S, S, 3) uint8`` (written into ``out`` if
        given); ``rng`` is a numpy generator on either backend (the draws move to the device)."""
        s, ps, k, n_d, xp = self.image_size, self._canvas_size, self.shift, self.n_distractors, self.xp
        state_ids = xp.asarray(state_ids, dtype=xp.int64)
        m = len(state_ids)
        # every random choice of a screen from one draw: (M, 3 + 4 n_d) -> integers below _bounds
        u = xp.asarray((rng.random((m, 3 + 4 * n_d)) * self._bounds).astype(np.int64))
        dy, dx, pattern = u[:, 0], u[:, 1], u[:, 2]
        # (M,) -> row ids (M, S) into the (V, shifts, S, ps) row table -> take (M, S, S*3),
        # a noise variant for every row
        first_row = (dx * self.n_states + state_ids) * ps + dy                 # (M,) in variant 0
        rows = self._variant_rows[pattern] + first_row[:, None]
        if xp.is_numpy:
            if out is None:
                out = np.empty((m, s, s, 3), dtype=np.uint8)
            np.take(self._rows, rows, axis=0, out=out.reshape(m, s, s * 3), mode="clip")
        else:
            screens = self._rows.index_select(0, rows.flatten()).view(m, s, s, 3)
            out = screens if out is None else out.copy_(screens)
        if n_d:
            parts = u[:, 3:].reshape(m, 4, n_d)
            cell, oy, ox, colour = (parts[:, i] for i in range(4))     # (M, n_d) each
            cell += cell >= (state_ids % self.n_positions)[:, None]   # never on the agent's cell
            shift = xp.arange(m) * (s * s) + (dy - k) * s + (dx - k)    # (M,) frame + shift, in pixels
            corner = self._cell_pixel[cell] + oy * s + ox + shift[:, None]
            if xp.is_numpy:
                pixels = out.reshape(-1, 3).view(self._pixel)[:, 0]         # one 3-byte item per pixel
                pixels[corner[..., None] + self._dmask] = self._dcolours[colour][..., None]   # (M, n_d, d*d)
            else:   # one distractor at a time: overlapping squares end as numpy's (the last wins)
                pixels = out.view(-1, 3)
                for j in range(n_d):
                    pixels[corner[:, j, None] + self._dmask] = self._dcolours_rgb[colour[:, j]][:, None]
        return out

    def render_frame(self, env: int = 0, tile_size: int = 16) -> np.ndarray:
        """The canonical screen of world ``env``'s state, scaled up ``tile_size // 4`` times."""
        frame = self.canonical_screen(int(self.state_id(self.xp.asarray([env]))[0]))
        scale = max(1, tile_size // 4)
        return np.repeat(np.repeat(frame, scale, axis=0), scale, axis=1)


class ScreensEnv(GridEnv):
    """
    ## Description

    The environment of Memory Association Networks §4.2: a ``width x height`` room (default
    4 x 3) whose state is the agent's (position, direction), with a goal in the bottom-right
    corner. ``info["state_id"] = direction * n_positions + position`` (position
    ``row * width + col``, direction 0 north, 1 east, 2 south, 3 west) on every reset and
    step. Every observation is a rendered screen that varies within a state: ``n_distractors``
    squares of random colours on random floor cells (never the agent's), a shift of up to
    ``shift`` pixels in each direction, and noise in ``[-noise, noise]`` on every pixel; the
    agent's cell and the direction of its triangle always identify the state. A tabular
    Q-learner on ``state_id`` learns the shortest path and so visits only some states.

    ## Observation

    ``obs_mode="pixels"`` (default): the top-down ``image_size x image_size x 3`` screen.
    ``obs_mode="symbolic"``: the egocentric ``view_size x view_size`` tile ids and the heading.
    ``canonical_screen(state_id)`` gives a state's noise-free screen.

    ## Action

    ``Discrete(3)``: 0 turn left, 1 turn right, 2 forward (into a wall: stays).

    ## Rewards

    +1 for stepping onto the goal; 0 otherwise.

    ## Starting state

    Top-left cell facing east (``random_start=True``: any cell but the goal, any direction).

    ## Episode end

    Terminates on the goal (``is_success``); truncated by ``TimeLimit`` after 100 steps.

    ## Arguments

    ``width`` (4), ``height`` (3), ``random_start`` (False), ``n_distractors`` (3), ``shift`` (2),
    ``noise`` (8), ``obs_mode`` ("pixels"), ``view_size`` (3), ``image_size`` (64), ``render_mode``.

    ## Registered configurations

    - ``memagent/Screens-v0``: 12 positions x 4 directions = 48 states
    """

    engine_cls = ScreensEngine

    @property
    def n_positions(self) -> int:
        return self.engine.n_positions

    @property
    def n_directions(self) -> int:
        return self.engine.n_directions

    @property
    def n_states(self) -> int:
        return self.engine.n_states

    @property
    def direction_names(self) -> tuple[str, ...]:
        """The name of each direction id: north, east, south, west."""
        return DIRECTIONS[: self.n_directions]

    def canonical_screen(self, state_id: int) -> np.ndarray:
        return self.engine.canonical_screen(state_id)
