"""Tile ids, the vectorised sprite renderer, and the pygame window.

Every frame (pixel observations of all N worlds at once, and ``render()``) is built by one
gather from a table of precomputed sprites: the sprite of a tile is stored as ``ts`` rows of
``ts * 3`` bytes, and a batch of tile-id grids ``(M, R, C)`` becomes the index array
``(M, R, ts, C)`` whose gather is already laid out as ``(M, R*ts, C*ts, 3)``.

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
BORDER_COLOUR = 0   # padding around a pixel view that does not fill the image


def _unit_grid(ts: int):
    """Pixel-centre coordinates in [0, 1]: (y, x), each (ts, ts)."""
    c = (np.arange(ts) + 0.5) / ts
    return np.meshgrid(c, c, indexing="ij")


def triangle_mask(ts: int, heading: int) -> np.ndarray:
    """A triangle pointing north/east/south/west (heading 0..3) inside a ts x ts cell."""
    y, x = _unit_grid(ts)
    u, v = [(1 - y, x), (x, y), (y, x), (1 - x, y)][heading]   # u: along the heading
    return (u >= 0.15) & (u <= 0.85) & (np.abs(v - 0.5) <= 0.5 * (0.85 - u) + 0.5 / ts)


@lru_cache(maxsize=16)
def sprites(ts: int) -> np.ndarray:
    """All sprites at ``ts`` pixels, ``(2 * N_SPRITES, ts, ts, 3) uint8`` (read-only)."""
    y, x = _unit_grid(ts)
    edge = (np.minimum(y, x) < 1 / ts) | (np.maximum(y, x) > 1 - 1 / ts)   # 1 px grid line
    floor = np.where(edge[..., None], GRID_COLOUR, FLOOR_COLOUR)
    inner = lambda m: (np.abs(y - 0.5) < m) & (np.abs(x - 0.5) < m)  # noqa: E731
    disc = lambda rad, cy=0.5, cx=0.5: (y - cy) ** 2 + (x - cx) ** 2 < rad ** 2  # noqa: E731
    base = np.empty((N_TILES, ts, ts, 3), dtype=np.float64)
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
    out = np.empty((2, 5, N_TILES, ts, ts, 3), dtype=np.float64)
    out[:, :] = base
    for h in range(4):
        out[:, 1 + h][:, :, triangle_mask(ts, h)] = AGENT_COLOUR
    out[1] = out[1] * 0.85 + 255 * 0.15     # lit: inside the agent's view
    table = np.ascontiguousarray(np.clip(np.rint(out), 0, 255).astype(np.uint8)).reshape(
        2 * N_SPRITES, ts, ts, 3)
    table.flags.writeable = False
    return table


class TileRenderer:
    """Draws batches of ``(M, rows, cols)`` sprite-id grids as ``(M, H, W, 3)`` uint8 frames.

    :param ts: tile size in pixels.
    :param out_size: when given, frames are ``out_size x out_size``, the tiles centred on a
        black border (``rows * ts <= out_size``).
    """

    def __init__(self, ts: int, rows: int, cols: int, out_size: int | None = None):
        self.ts, self.rows, self.cols = ts, rows, cols
        self.table = sprites(ts).reshape(-1, ts * 3)                   # (sprites*ts, ts*3)
        self.row_offsets = np.arange(ts, dtype=np.int32)[None, None, :, None]
        self.h, self.w = rows * ts, cols * ts
        self.out_size = out_size
        if out_size is not None:
            self.top, self.left = (out_size - self.h) // 2, (out_size - self.w) // 2

    def render(self, ids: np.ndarray) -> np.ndarray:
        m = ids.shape[0]
        # (M, R, C) -> gather rows (M, R, ts, C) of ts*3 bytes -> (M, R*ts, C*ts, 3)
        rows = (ids.astype(np.int32) * self.ts)[:, :, None, :] + self.row_offsets
        if self.out_size is None or (self.h == self.out_size and self.w == self.out_size):
            return self.table[rows].reshape(m, self.h, self.w, 3)
        out = np.full((m, self.out_size, self.out_size, 3), BORDER_COLOUR, dtype=np.uint8)
        out[:, self.top:self.top + self.h, self.left:self.left + self.w] = \
            self.table[rows].reshape(m, self.h, self.w, 3)
        return out


class Viewer:
    """A pygame window that shows rgb frames scaled up, with an optional line of text."""

    def __init__(self, title: str = "memagent", scale: int = 1, text_height: int = 28):
        import pygame

        self.pygame = pygame
        pygame.init()
        pygame.display.init()
        self.title, self.scale, self.text_height = title, scale, text_height
        self.screen = None
        self.font = None

    def show(self, frame: np.ndarray, text: str = "", fps: float | None = None) -> None:
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
