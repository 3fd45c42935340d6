"""The batched grid engine every memagent world is built on.

A :class:`GridEngine` holds ``n_envs`` worlds at once in flat numpy arrays: the tile ids of
every world's (padded) map in one ``uint8`` array, the agent's position as an absolute index
into it, the heading and the step count. A step is a handful of whole-array operations (no
Python loop over worlds), and an observation is one fancy-index gather through a
precomputed table of egocentric offsets. The gymnasium ``Env`` (:mod:`memagent.envs.env`) is
an engine with ``n_envs=1``; the SB3 ``VecEnv`` (:mod:`memagent.envs.vec`) is an engine with
``n_envs=N``.

Subclasses (one per world) set the map size, draw layouts in ``_reset(idx)`` and define the
rules in ``_step(actions)``, written once for both array backends (:mod:`memagent.envs.backend`):
an engine is built with numpy on the host and :meth:`GridEngine.to` moves it to a torch
device, where the same rules step torch tensors.
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces
from memagent.envs import render as _render
from memagent.envs.backend import NUMPY, TensorTileRenderer, get_backend
from memagent.envs.render import (  # noqa: F401  (tile ids are part of this module's API)
    CUE0,
    DISTRACTOR0,
    DOOR0,
    FLOOR,
    GATE,
    GOAL,
    JUNCTION,
    KEY0,
    MAX_COLOURS,
    N_TILES,
    TILE_NAMES,
    WALL,
)

# Absolute moves (TMaze, KeyDoor, RecallSequence): 0=up (north), 1=right (east), 2=down (south), 3=left (west).
UP, RIGHT, DOWN, LEFT = 0, 1, 2, 3
DIRECTIONS = ("north", "east", "south", "west")
MOVE_DYX = np.array([(-1, 0), (0, 1), (1, 0), (0, -1)], dtype=np.int64)

# Which tiles the agent may step onto. Doors are "passable": entering one is the choice.
PASSABLE = np.zeros(256, dtype=bool)
PASSABLE[[FLOOR, JUNCTION, GOAL]] = True
PASSABLE[DOOR0:DOOR0 + MAX_COLOURS] = True
PASSABLE[KEY0:KEY0 + MAX_COLOURS] = True
PASSABLE[DISTRACTOR0:DISTRACTOR0 + MAX_COLOURS] = True

OBS_MODES = ("symbolic", "pixels")


def check_int(name: str, value, low: int, high: int | None = None) -> int:
    """``value`` as an int in ``[low, high]``, else a ValueError naming ``name`` and the range."""
    allowed = f">= {low}" if high is None else f"in {low}..{high}"
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer {allowed}, got {value!r}")
    if value < low or (high is not None and value > high):
        raise ValueError(f"{name} must be {allowed}, got {value}")
    return int(value)


def check_choice(name: str, value, allowed) -> str:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}; got {value!r}")
    return value


class GridEngine:
    """``n_envs`` copies of one gridworld, stepped together.

    :param n_envs: how many worlds to hold.
    :param obs_mode: ``"symbolic"`` (egocentric ``view_size x view_size`` tile ids, then the
        heading: a ``MultiDiscrete`` of categories, which SB3 one-hot encodes) or ``"pixels"`` (the same view drawn as an
        ``image_size x image_size x 3`` ``uint8`` image, the agent as a red triangle).
    :param view_size: side of the egocentric view in cells (odd, >= 3).
    :param image_size: side of a pixel observation in pixels (>= 36 so SB3's CnnPolicy takes it).
    :param seed: seed of the engine's ``numpy.random.Generator`` (the only source of randomness).

    Subclasses set ``self.map_h, self.map_w`` (the map with its walls) before calling
    ``super().__init__`` and implement ``_reset(idx)`` and ``_step(actions)``, with the
    backend's namespace ``self.xp`` where numpy and torch differ, and random draws taken from
    ``self.rng`` on the host and moved with ``self.xp.asarray``.
    """

    #: array attributes :meth:`to` leaves on the host (read by host-side code only)
    host_arrays: tuple[str, ...] = ()

    n_actions = 4
    action_names = ("up", "right", "down", "left")
    default_obs_mode = "symbolic"
    #: how many values an episode's cue (what the agent must remember) takes; 0: no cue.
    #: Worlds with a cue set it per instance and apply :meth:`_queued_cues` in ``_reset``.
    n_cue_values = 0

    def __init__(self, n_envs: int = 1, *, obs_mode: str | None = None, view_size: int = 3,
                 image_size: int = 64, seed: int | None = None):
        self.n = check_int("n_envs", n_envs, 1)
        self.obs_mode = check_choice("obs_mode", obs_mode or self.default_obs_mode, OBS_MODES)
        self.view_size = k = check_int("view_size", view_size, 3)
        if k % 2 == 0:
            raise ValueError(f"view_size must be odd (3, 5, 7, ...), got {k}")
        self.image_size = check_int("image_size", image_size, 36)
        self.rng = np.random.default_rng(seed)
        self.xp = NUMPY
        self._passable = PASSABLE
        self._cue_queue: list[int] = []
        r = k // 2
        self.pad = r
        self.hp, self.wp = self.map_h + 2 * r, self.map_w + 2 * r   # padded map
        cells = self.hp * self.wp
        # One flat uint8 array: every world's padded map, then one heading cell per world, so
        # that the symbolic observation (view + heading) is a single gather.
        self.flat = np.full(self.n * cells + self.n, WALL, dtype=np.uint8)
        self.grid = self.flat[: self.n * cells].reshape(self.n, self.hp, self.wp)
        self.heading = self.flat[self.n * cells:]
        self.base = np.arange(self.n, dtype=np.int64) * cells     # flat index of each world's (0, 0)
        self.pos = np.zeros(self.n, dtype=np.int64)               # absolute flat index of the agent
        self.t = np.zeros(self.n, dtype=np.int64)                 # steps since reset
        self._all = np.arange(self.n, dtype=np.int64)
        self.delta = MOVE_DYX[:, 0] * self.wp + MOVE_DYX[:, 1]    # flat offset of each move
        dy, dx = np.divmod(np.arange(k * k), k)
        self.view_offsets = (dy - r) * self.wp + (dx - r)         # (k*k,) egocentric offsets
        self._idx = np.empty((self.n, k * k + 1), dtype=np.int64)   # gather indices, reused
        self._idx[:, -1] = self.n * cells + np.arange(self.n)
        if self.obs_mode == "symbolic":
            # Categories, not magnitudes: SB3 one-hot encodes a MultiDiscrete observation
            # (a Box of ids would reach the network as numbers, cue 0 = 5.0 beside cue 1 = 6.0).
            # int64, gymnasium's default: SB3 sums nvec in the space's dtype.
            nvec = np.full(k * k + 1, N_TILES, dtype=np.int64)
            nvec[-1] = len(DIRECTIONS)
            self.observation_space = spaces.MultiDiscrete(nvec)
        else:
            s = self.image_size
            self.observation_space = spaces.Box(0, 255, (s, s, 3), np.uint8)
            sizes = _render.split(s, k)
            self._view_renderer = _render.TileRenderer(sizes, sizes)
        self.action_space = spaces.Discrete(self.n_actions)

    # -- backends -------------------------------------------------------------------------
    @property
    def device(self):
        """The torch device of the engine's arrays, ``None`` for numpy on the host."""
        return self.xp.device

    def to(self, device) -> GridEngine:
        """Move the engine to a torch ``device`` (``"cpu"``, ``"cuda"``, a ``torch.device``);
        ``None`` keeps numpy. Returns the engine. Only a numpy engine can be moved (build a
        new one to change devices); the state moves as it is (a reset engine stays reset).

        :raises ValueError: ``device`` is not a device, or the engine is already on one.
        """
        xp = get_backend(device)
        if xp.is_numpy:
            return self
        if not self.xp.is_numpy:
            raise ValueError(f"this engine is already on {self.xp.device}; build a new one "
                             "(make_engine(..., device=...)) to change devices")
        flat, flat_t = self.flat, xp.asarray(self.flat)
        origin = flat.__array_interface__["data"][0]
        for name, value in list(vars(self).items()):
            if not isinstance(value, np.ndarray) or value.dtype.kind == "V" or name in self.host_arrays:
                continue
            if value is flat:
                setattr(self, name, flat_t)
            elif np.may_share_memory(value, flat):    # a view of the map: stays a view
                offset = value.__array_interface__["data"][0] - origin
                strides = tuple(s // flat.itemsize for s in value.strides)
                setattr(self, name, xp.th.as_strided(flat_t, value.shape, strides, offset // flat.itemsize))
            else:
                setattr(self, name, xp.asarray(value))
        self.xp = xp
        if self.obs_mode == "pixels":
            sizes = _render.split(self.image_size, self.view_size)
            self._view_renderer = TensorTileRenderer(sizes, sizes, xp)
        return self

    # -- coordinates --------------------------------------------------------------------
    def cell_index(self, row, col, env=None):
        """Absolute flat index of map cell ``(row, col)`` (map coordinates, walls included)."""
        base = self.base if env is None else self.base[env]
        return base + (np.asarray(row) + self.pad) * self.wp + (np.asarray(col) + self.pad)

    def agent_rc(self, env=None) -> tuple[np.ndarray, np.ndarray]:
        """The agent's (row, col) in map coordinates."""
        base = self.base if env is None else self.base[env]
        pos = self.pos if env is None else self.pos[env]
        rel = pos - base
        return rel // self.wp - self.pad, rel % self.wp - self.pad

    # -- the API the Env and VecEnv views use ---------------------------------------------
    def seed(self, seed: int | None = None) -> None:
        self.rng = np.random.default_rng(seed)

    def queue_cues(self, cues) -> None:
        """Give the next episodes these cues, in order: one per world reset (worlds reset
        together take them in world order), then cues drawn at random again. The generator
        is drawn from as without a queue, so everything else in those episodes is unchanged.

        :param cues: integers in ``0 .. n_cue_values - 1`` (the world's docstring says what
            a cue value is, e.g. the T-maze's cue colour).
        :raises ValueError: the world has no cue, or a value is out of range.
        """
        if not self.n_cue_values:
            raise ValueError(f"{type(self).__name__} has no cue to set (n_cue_values = 0)")
        cues = [int(c) for c in np.atleast_1d(cues)]
        bad = [c for c in cues if not 0 <= c < self.n_cue_values]
        if bad:
            raise ValueError(f"cues must be in 0..{self.n_cue_values - 1}, got {bad[0]}")
        self._cue_queue.extend(cues)

    def _queued_cues(self, m: int) -> tuple[np.ndarray, np.ndarray]:
        """``(worlds, cues)``: which of the ``m`` worlds being reset take a queued cue (the
        first ones, positions into ``idx``) and the cues they take."""
        k = min(m, len(self._cue_queue))
        cues = np.array(self._cue_queue[:k], dtype=np.int64)
        del self._cue_queue[:k]
        return np.arange(k), cues

    def reset(self, idx: np.ndarray | None = None) -> None:
        """Start a new episode in the worlds ``idx`` (all when None)."""
        idx = self._all if idx is None else self.xp.asarray(idx, dtype=self.xp.int64)
        self.t[idx] = 0
        self._reset(idx)

    def check_actions(self, actions) -> np.ndarray:
        """``actions`` as an ``int64`` array of shape ``(n_envs,)``, or a ValueError. A torch
        engine takes tensors (on any device) and numpy arrays."""
        if not self.xp.is_numpy:
            return self._check_tensor_actions(actions)
        a = np.asarray(actions)
        if a.shape != (self.n,):
            if a.size == self.n and a.ndim == 2 and a.shape[1] == 1:
                a = a.reshape(self.n)
            else:
                raise ValueError(f"actions must have shape (n_envs,) = ({self.n},), got {a.shape}")
        if a.dtype != np.int64:
            if a.dtype.kind not in "iub":
                raise ValueError(f"actions must be integers in 0..{self.n_actions - 1}, got dtype {a.dtype}")
            a = a.astype(np.int64)
        if (a.view(np.uint64) >= self.n_actions).any():   # negatives wrap to huge values
            bad = a[(a < 0) | (a >= self.n_actions)][0]
            raise ValueError(f"action must be in 0..{self.n_actions - 1} "
                             f"({', '.join(self.action_names)}), got {bad}")
        return a

    def _check_tensor_actions(self, actions):
        th = self.xp.th
        a = self.xp.asarray(actions)
        if tuple(a.shape) != (self.n,):
            if a.numel() == self.n and a.ndim == 2 and a.shape[1] == 1:
                a = a.reshape(self.n)
            else:
                raise ValueError(f"actions must have shape (n_envs,) = ({self.n},), got {tuple(a.shape)}")
        if a.dtype != th.int64:
            if a.is_floating_point() or a.is_complex():
                raise ValueError(f"actions must be integers in 0..{self.n_actions - 1}, got dtype {a.dtype}")
            a = a.long()
        low, high = (int(v) for v in th.aminmax(a))    # one pass; two scalars to the host
        if low < 0 or high >= self.n_actions:
            bad = (a < 0) | (a >= self.n_actions)
            raise ValueError(f"action must be in 0..{self.n_actions - 1} "
                             f"({', '.join(self.action_names)}), got {int(a[bad][0])}")
        return a

    def step(self, actions) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Apply one action per world; returns ``(reward float32, terminated bool, success bool)``.

        No autoreset and no time limit here: the views add those."""
        a = self.check_actions(actions)
        out = self._step(a)
        self.t += 1
        return out

    def _move(self, a: np.ndarray):
        """Absolute move ``a`` where the target tile is passable; sets the heading."""
        target = self.pos + self.xp.take(self.delta, a)
        tile = self.xp.take(self.flat, target)
        ok = self.xp.take(self._passable, tile)
        self.xp.copyto(self.pos, target, where=ok)
        self.heading[:] = a
        return tile, ok

    def _choice(self, tile: np.ndarray, n_doors: int, target: np.ndarray):
        """Whether the move entered one of doors ``0..n_doors-1``, and whether it was ``target``."""
        door = tile - DOOR0                          # uint8: non-doors wrap to large values
        chose = door < n_doors
        return chose, chose & (door == target)

    def _shaped(self, reward: np.ndarray, a, moved, on_junction, chose, success) -> np.ndarray:
        """Adds ``penalty`` for a wrong door and ``-cost`` for a step that does not move east,
        except a move on a junction that enters a door or moves along a hall (the choice): the
        shaping that lets a memoryless policy learn to walk. Bumping a wall costs everywhere,
        so waiting at the junction for the time limit never pays. Worlds with doors set
        ``penalty`` and ``cost``."""
        if self.penalty:
            reward += self.xp.astype(chose & ~success, self.xp.float32) * self.penalty
        east = a == RIGHT
        free = (moved & east) | (on_junction & (moved | chose) & (a != LEFT))
        reward -= self.cost * ~free
        return reward

    def observe(self, idx: np.ndarray | None = None, out: np.ndarray | None = None) -> np.ndarray:
        """Observations of the worlds ``idx`` (all when None): a new array, or written into
        ``out`` (C-contiguous, ``(M,) + observation_space.shape``) when given."""
        if self.obs_mode == "symbolic":
            xp = self.xp
            if idx is None:
                gather = self._idx
                xp.add(self.pos[:, None], self.view_offsets, out=gather[:, :-1])
            else:
                gather = self._idx[idx]
                xp.add(self.pos[idx, None], self.view_offsets, out=gather[:, :-1])
            if out is None:
                return xp.astype(xp.take(self.flat, gather), self.observation_space.dtype)
            out[...] = xp.take(self.flat, gather)
            return out
        return self._view_renderer.render(self.view_sprites(idx), out=out)

    def view_sprites(self, idx=None) -> np.ndarray:
        """Sprite ids of the egocentric view, ``(M, k, k)``: tiles, the agent drawn at the centre."""
        pos = self.pos if idx is None else self.pos[idx]
        xp = self.xp
        ids = xp.astype(xp.take(self.flat, pos[:, None] + self.view_offsets), xp.int32)
        heading = self.heading if idx is None else self.heading[idx]
        c = self.view_size * self.view_size // 2
        ids[:, c] += (xp.astype(heading, xp.int32) + 1) * N_TILES
        return ids.reshape(-1, self.view_size, self.view_size)

    def info_arrays(self) -> dict[str, np.ndarray]:
        """Per-world values that go into every step's ``info`` (e.g. ``state_id``)."""
        return {}

    # -- rendering ------------------------------------------------------------------------
    render_cols = 25   # widest top-down render, in cells; longer maps scroll with the agent

    def render_frame(self, env: int = 0, tile_size: int = 16) -> np.ndarray:
        """Top-down ``rgb`` frame of world ``env``: the whole map (or a window that follows
        the agent on long maps), the agent's view highlighted."""
        r = self.pad
        ar, ac = (int(v) for v in self.agent_rc(env))
        w = min(self.map_w, self.render_cols)
        c0 = int(np.clip(ac - w // 2, 0, self.map_w - w))
        ids = self.xp.to_numpy(self.grid[env, r:r + self.map_h, r + c0:r + c0 + w]).astype(np.int32)
        lit = np.zeros(ids.shape, dtype=np.int32)
        lit[max(ar - r, 0):ar + r + 1, max(ac - c0 - r, 0):ac - c0 + r + 1] = _render.N_SPRITES
        ids[ar, ac - c0] += (int(self.heading[env]) + 1) * N_TILES
        renderer = _render.TileRenderer([tile_size] * ids.shape[0], [tile_size] * ids.shape[1])
        return renderer.render((ids + lit)[None])[0]

    # -- subclass hooks -------------------------------------------------------------------
    def _reset(self, idx: np.ndarray) -> None:   # pragma: no cover - abstract
        raise NotImplementedError

    def _step(self, a: np.ndarray):   # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def max_steps(self) -> int:
        """The time limit this world is registered with (TimeLimit / make_vec truncate there)."""
        raise NotImplementedError
