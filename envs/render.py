"""Tile ids, the vectorised sprite renderer, and the pygame window.

Every frame (pixel observations of all N worlds at once, and ``render()``) is drawn from
precomputed sprites by :class:`TileRenderer`: each distinct row of tiles becomes a pixel
strip once (kept in a cache), and a batch of tile-id grids ``(M, R, C)`` is then one
``np.take`` of whole pixel rows of the strips, already laid out as ``(M, H, W, 3)``.

Sprite ids: ``lit * N_SPRITES + layer * N_TILES + tile`` where ``layer`` is 0 for the bare
tile and ``1 + heading`` for the tile with the agent (a red triangle) on it, and ``lit``
brightens the cells inside the agent's view in top-down renders.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

# Tile ids (symbolic observations carry these).
FLOOR, WALL, JUNCTION, GATE, GOAL = 0, 1, 2, 3, 4
MAX_COLOURS = 8
CUE0 = 5                            # a sign showing cue i (TMaze, RecallSequence)
DOOR0 = CUE0 + MAX_COLOURS          # door i (entering it is a choice)
KEY0 = DOOR0 + MAX_COLOURS          # a key of colour i (KeyDoor)
DISTRACTOR0 = KEY0 + MAX_COLOURS    # a ball of colour i (KeyDoor's delay region)
N_TILES = DISTRACTOR0 + MAX_COLOURS
N_SPRITES = 5 * N_TILES             # bare tile + agent with 4 headings
TILE_NAMES = (["floor", "wall", "junction", "gate", "goal"]
              + [f"cue{i}" for i in range(MAX_COLOURS)] + [f"door{i}" for i in range(MAX_COLOURS)]
              + [f"key{i}" for i in range(MAX_COLOURS)] + [f"ball{i}" for i in range(MAX_COLOURS)])

# Colour i of cues, doors, keys and balls. Red is kept for the agent.
PALETTE = np.array([
    (40, 110, 240),   # blue
    (250, 210, 30),   # yellow
    (40, 200, 70),    # green
    (170, 70, 220),   # purple
    (250, 140, 20),   # orange
    (30, 220, 230),   # cyan
    (250, 120, 200),  # pink
    (235, 235, 235),  # white
], dtype=np.uint8)
AGENT_COLOUR = np.array((230, 30, 30), dtype=np.uint8)
FLOOR_COLOUR, GRID_COLOUR = np.array((30, 30, 30)), np.array((55, 55, 55))
WALL_COLOUR = np.array((105, 105, 110))


def _unit_grid(h: int, w: int | None = None):
    """Pixel-centre coordinates in [0, 1]: (y, x), each (h, w)."""
    w = h if w is None else w
    return np.meshgrid((np.arange(h) + 0.5) / h, (np.arange(w) + 0.5) / w, indexing="ij")


def triangle_mask(h: int, heading: int, w: int | None = None) -> np.ndarray:
    """A triangle pointing north/east/south/west (heading 0..3) inside an h x w cell."""
    y, x = _unit_grid(h, w)
    u, v = [(1 - y, x), (x, y), (y, x), (1 - x, y)][heading]   # u: along the heading
    return (u >= 0.15) & (u <= 0.85) & (np.abs(v - 0.5) <= 0.5 * (0.85 - u) + 0.5 / min(y.shape))


@lru_cache(maxsize=32)
def sprites(h: int, w: int | None = None) -> np.ndarray:
    """All sprites at ``h x w`` pixels, ``(2 * N_SPRITES, h, w, 3) uint8`` (read-only)."""
    w = h if w is None else w
    y, x = _unit_grid(h, w)
    edge = (y < 1 / h) | (y > 1 - 1 / h) | (x < 1 / w) | (x > 1 - 1 / w)   # 1 px grid line
    floor = np.where(edge[..., None], GRID_COLOUR, FLOOR_COLOUR)
    inner = lambda m: (np.abs(y - 0.5) < m) & (np.abs(x - 0.5) < m)  # noqa: E731
    disc = lambda rad, cy=0.5, cx=0.5: (y - cy) ** 2 + (x - cx) ** 2 < rad ** 2  # noqa: E731
    base = np.empty((N_TILES, h, w, 3), dtype=np.float64)
    base[:] = floor
    base[WALL] = np.where(edge[..., None], WALL_COLOUR * 0.7, WALL_COLOUR)
    diamond = np.abs(y - 0.5) + np.abs(x - 0.5) < 0.3
    base[JUNCTION][diamond] = (120, 120, 120)
    base[GATE] = floor
    base[GATE][(np.abs(x - 0.5) < 0.12) | (np.abs(y - 0.5) > 0.38)] = (150, 100, 50)
    base[GOAL] = np.where(edge[..., None], (0, 120, 0), (40, 200, 60))
    for i, col in enumerate(PALETTE.astype(np.float64)):
        base[CUE0 + i] = np.where(inner(0.42)[..., None], col, WALL_COLOUR)       # a sign on the wall
        door = np.where(inner(0.38)[..., None], col * 0.45, col)
        door[disc(0.07, 0.5, 0.72)] = col                                          # handle
        base[DOOR0 + i] = door
        key = floor.copy()
        key[disc(0.18, 0.3, 0.5) & ~disc(0.08, 0.3, 0.5)] = col
        key[(np.abs(x - 0.5) < 0.06) & (y > 0.45) & (y < 0.85)] = col
        key[(x > 0.5) & (x < 0.68) & (np.abs(y - 0.78) < 0.05)] = col
        base[KEY0 + i] = key
        ball = floor.copy()
        ball[disc(0.28)] = col
        base[DISTRACTOR0 + i] = ball
    out = np.empty((2, 5, N_TILES, h, w, 3), dtype=np.float64)
    out[:, :] = base
    for heading in range(4):
        out[:, 1 + heading][:, :, triangle_mask(h, heading, w)] = AGENT_COLOUR
    out[1] = out[1] * 0.85 + 255 * 0.15     # lit: inside the agent's view
    table = np.ascontiguousarray(np.clip(np.rint(out), 0, 255).astype(np.uint8)).reshape(
        2 * N_SPRITES, h, w, 3)
    table.flags.writeable = False
    return table


def split(total: int, n: int) -> list[int]:
    """``n`` tile sizes that add up to ``total``; the spare pixels go to the middle tiles."""
    ts, extra = divmod(total, n)
    first = (n - extra) // 2
    return [ts + (first <= i < first + extra) for i in range(n)]


class TileRenderer:
    """Draws batches of ``(M, rows, cols)`` sprite-id grids as ``(M, H, W, 3)`` uint8 frames.

    :param heights: pixel height of each tile row (``split(H, rows)``).
    :param widths: pixel width of each tile column.

    A row of tiles is drawn once as a pixel strip ``(h, W*3)`` and kept in a cache keyed by
    its sprite ids (worlds repeat: a T-maze view has a few dozen distinct rows); a batch of
    frames is then one ``np.take`` of whole pixel rows from the strips, written contiguously
    (numpy's fastest gather). Views wider than 7 tiles skip the cache.
    """

    max_cached = 8192   # strips; the cache starts again when it would grow past this

    def __init__(self, heights: list[int], widths: list[int]):
        self.heights, self.widths = list(heights), list(widths)
        self.h, self.w = sum(self.heights), sum(self.widths)
        self.hmax = max(self.heights)
        self.row_classes = sorted(set(self.heights))          # at most two heights
        self.row_class = np.array([self.row_classes.index(h) for h in self.heights])
        self.tables = {(h, w): sprites(h, w).reshape(-1, w * 3)
                       for h in self.row_classes for w in set(self.widths)}
        self.col_bytes = np.concatenate([[0], np.cumsum(self.widths) * 3])
        self.out_row_tile = np.repeat(np.arange(len(self.heights)), self.heights)   # (H,)
        self.out_row_sub = np.concatenate([np.arange(h) for h in self.heights])     # (H,)
        self.n_ids = 2 * N_SPRITES
        self.n_classes = len(self.row_classes)
        self._clear()

    def _clear(self) -> None:
        self._codes = np.zeros(0, dtype=np.int64)      # sorted strip codes
        self._slot = np.zeros(0, dtype=np.int64)       # strip of each sorted code
        self._strips = np.zeros((64, self.hmax, self.w * 3), dtype=np.uint8)
        self._n = 0

    def _draw(self, keys: np.ndarray) -> np.ndarray:
        """Strips of tile rows ``keys`` (U, cols + 1: sprite ids, height class) -> (U, hmax, W*3)."""
        strips = np.zeros((len(keys), self.hmax, self.w * 3), dtype=np.uint8)
        for c, h in enumerate(self.row_classes):
            sel = np.flatnonzero(keys[:, -1] == c)
            for j, w in enumerate(self.widths):
                # (U_c,) sprite ids -> sprite rows (U_c, h) -> (U_c, h, w*3) bytes of column j
                src = keys[sel, j][:, None] * h + np.arange(h)
                strips[sel, :h, self.col_bytes[j]:self.col_bytes[j + 1]] = self.tables[h, w][src]
        return strips

    def _strip_ids(self, ids: np.ndarray) -> np.ndarray:
        """The cached strip of every (frame, tile row), drawing the missing ones: (M, rows)."""
        code = ids[..., 0].astype(np.int64)
        for j in range(1, ids.shape[2]):
            code = code * self.n_ids + ids[..., j]
        code = (code * self.n_classes + self.row_class).ravel()          # (M * rows,)
        pos = np.minimum(np.searchsorted(self._codes, code), max(len(self._codes) - 1, 0))
        missing = self._codes[pos] != code if len(self._codes) else np.ones(len(code), bool)
        if missing.any():
            new = np.unique(code[missing])
            if self._n + len(new) > self.max_cached:
                self._clear()
                new = np.unique(code)
            keys = np.empty((len(new), ids.shape[2] + 1), dtype=np.int64)
            rest = new.copy()
            keys[:, -1] = rest % self.n_classes
            rest //= self.n_classes
            for j in range(ids.shape[2] - 1, -1, -1):
                keys[:, j] = rest % self.n_ids
                rest //= self.n_ids
            if self._n + len(new) > len(self._strips):
                grown = np.zeros((2 * (self._n + len(new)),) + self._strips.shape[1:], np.uint8)
                grown[:self._n] = self._strips[:self._n]
                self._strips = grown
            self._strips[self._n:self._n + len(new)] = self._draw(keys)
            codes = np.concatenate([self._codes, new])
            slots = np.concatenate([self._slot, self._n + np.arange(len(new))])
            order = np.argsort(codes, kind="stable")
            self._codes, self._slot = codes[order], slots[order]
            self._n += len(new)
            pos = np.searchsorted(self._codes, code)
        return self._slot[pos].reshape(ids.shape[:2])

    def render(self, ids: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Frames of ``ids`` (M, rows, cols); written into ``out`` (M, H, W, 3) when given."""
        m, rows, cols = ids.shape
        if cols <= 7:
            strip, table = self._strip_ids(ids), self._strips
        else:   # too many ids for one int64 key: draw this batch's distinct rows afresh
            keyed = np.concatenate([ids.astype(np.int64),
                                    np.broadcast_to(self.row_class[None, :, None], (m, rows, 1))], axis=2)
            keys, strip = np.unique(keyed.reshape(m * rows, cols + 1), axis=0, return_inverse=True)
            strip, table = strip.reshape(m, rows), self._draw(keys)
        # output row y of frame m = strip[m, tile row of y], sub-row of y: (M, H) row ids
        take = strip[:, self.out_row_tile] * self.hmax + self.out_row_sub
        if out is None:
            out = np.empty((m, self.h, self.w, 3), dtype=np.uint8)
        np.take(table.reshape(-1, self.w * 3), take, axis=0, out=out.reshape(m, self.h, self.w * 3),
                mode="clip")                                # mode="clip": no buffered copy
        return out


class Viewer:
    """A pygame window that shows rgb frames scaled up, with an optional line of text."""

    def __init__(self, title: str = "memagent", scale: int = 1, text_height: int = 28):
        import pygame

        self.pygame = pygame
        pygame.display.init()          # not pygame.init(): no audio
        self.title, self.scale, self.text_height = title, scale, text_height
        self.screen = None
        self.font = None

    def show(self, frame: np.ndarray, text: str = "") -> None:
        pg = self.pygame
        h, w = frame.shape[:2]
        size = (w * self.scale, h * self.scale + (self.text_height if text else 0))
        if self.screen is None or self.screen.get_size() != size:
            self.screen = pg.display.set_mode(size)
            pg.display.set_caption(self.title)
        surf = pg.surfarray.make_surface(np.ascontiguousarray(frame.transpose(1, 0, 2)))
        if self.scale != 1:
            surf = pg.transform.scale(surf, (w * self.scale, h * self.scale))
        self.screen.fill((0, 0, 0))
        self.screen.blit(surf, (0, 0))
        if text:
            if self.font is None:
                pg.font.init()
                self.font = pg.font.Font(None, 24)
            self.screen.blit(self.font.render(text, True, (230, 230, 230)), (6, h * self.scale + 5))
        pg.event.pump()
        pg.display.flip()

    def close(self) -> None:
        if self.screen is not None:
            self.pygame.display.quit()
            self.screen = None
