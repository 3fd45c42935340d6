"""Figures of imagined screens (MAN §4.2, the figure of every state's generated screen).

:func:`state_figure` lays screens out as the paper does: position horizontally, direction
vertically (``state_id = direction * n_positions + position``), with the imagined screens on
the left panel and real screens of the same states on the right. A state the agent never
visited is drawn greyed out with a red cross in both panels (its imagined screen is only the
prior's sample; its real cell shows what the caller passes, e.g. the env's noise-free
``canonical_screen``, or black). Written as PNG with pygame; :func:`show` opens a
pygame window.

Geometry (for readers of the pixels, tests included): :class:`Layout` gives every cell's box.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

RED = np.array([255, 0, 0], np.uint8)
BACKGROUND = np.array([255, 255, 255], np.uint8)
PANEL_GAP = 16  # pixels between the imagined and the real panel


class Layout(NamedTuple):
    """Where cell (panel, direction, position) lies: ``box(...) -> (y0, x0, y1, x1)``."""

    n_positions: int
    n_directions: int
    height: int
    width: int
    pad: int
    panels: int

    @property
    def panel_width(self) -> int:
        return self.n_positions * (self.width + self.pad) + self.pad

    @property
    def shape(self) -> tuple[int, int]:
        return (self.n_directions * (self.height + self.pad) + self.pad,
                self.panels * self.panel_width + (self.panels - 1) * PANEL_GAP)

    def box(self, panel: int, direction: int, position: int) -> tuple[int, int, int, int]:
        y0 = self.pad + direction * (self.height + self.pad)
        x0 = panel * (self.panel_width + PANEL_GAP) + self.pad + position * (self.width + self.pad)
        return y0, x0, y0 + self.height, x0 + self.width


def _to_uint8_rgb(img: np.ndarray) -> np.ndarray:
    img = np.asarray(img)
    if img.dtype != np.uint8:
        img = np.clip(np.round(img * 255.0), 0, 255).astype(np.uint8)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    return img


def mark_unvisited(cell: np.ndarray) -> np.ndarray:
    """Grey the cell out and draw a red cross (3 pixels wide) over it."""
    grey = cell.mean(-1, keepdims=True) * 0.3 + 150                           # (H, W, 1)
    out = np.repeat(grey, 3, axis=-1).astype(np.uint8)
    h, w = out.shape[:2]
    t = np.linspace(0, 1, max(h, w) * 2)
    for dy in (-1, 0, 1):
        ys = np.clip(np.round(t * (h - 1)).astype(int) + dy, 0, h - 1)
        xs = np.round(t * (w - 1)).astype(int)
        out[ys, xs] = RED
        out[ys, w - 1 - xs] = RED
    return out


def state_figure(imagined: np.ndarray, n_positions: int, n_directions: int,
                 visited: np.ndarray, real: np.ndarray | None = None, pad: int = 2):
    """The figure as an (H, W, 3) uint8 array, and its :class:`Layout`.

    :param imagined: (n_states, h, w, 3) one imagined screen per state id.
    :param visited: (n_states,) bool: states the agent filed screens of.
    :param real: (n_states, h, w, 3) a real screen per state (greyed and crossed where not
        visited).
    """
    n_states = n_positions * n_directions
    imagined = np.asarray(imagined)
    visited = np.asarray(visited, dtype=bool)
    if len(imagined) != n_states or len(visited) != n_states:
        raise ValueError(f"need one imagined screen and one visited flag per state "
                         f"(n_positions * n_directions = {n_states}), got {len(imagined)} "
                         f"screens, {len(visited)} flags")
    h, w = imagined.shape[1:3]
    layout = Layout(n_positions, n_directions, h, w, pad, 1 if real is None else 2)
    canvas = np.empty((*layout.shape, 3), np.uint8)
    canvas[:] = BACKGROUND
    panels = [imagined] if real is None else [imagined, np.asarray(real)]
    for panel, screens in enumerate(panels):
        for s in range(n_states):
            d, p = divmod(s, n_positions)
            cell = _to_uint8_rgb(screens[s])
            if not visited[s]:
                cell = mark_unvisited(cell)
            y0, x0, y1, x1 = layout.box(panel, d, p)
            canvas[y0:y1, x0:x1] = cell
    return canvas, layout


def save_png(image: np.ndarray, path: str | Path) -> Path:
    """Write an (H, W, 3) uint8 array as PNG (pygame, no display needed)."""
    import os

    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    import pygame

    from memagent.utils import atomic_write

    surface = pygame.surfarray.make_surface(np.ascontiguousarray(image.transpose(1, 0, 2)))
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"the figure is written as PNG: give a path ending in .png, got {path}")

    def write(tmp: str) -> None:  # pygame picks the format from the name: save as .png first
        pygame.image.save(surface, tmp + ".png")
        os.replace(tmp + ".png", tmp)

    return atomic_write(path, write)


def load_png(path: str | Path) -> np.ndarray:
    """Read a PNG back as (H, W, 3) uint8."""
    import pygame

    return pygame.surfarray.array3d(pygame.image.load(str(path))).transpose(1, 0, 2)


def show(image: np.ndarray, title: str = "memagent imagine", scale: int = 1) -> None:
    """Open a pygame window with the figure until it is closed (or Esc/q is pressed)."""
    import pygame

    pygame.init()
    try:
        h, w = image.shape[:2]
        screen = pygame.display.set_mode((w * scale, h * scale))
        pygame.display.set_caption(title)
        surface = pygame.surfarray.make_surface(np.ascontiguousarray(image.transpose(1, 0, 2)))
        screen.blit(pygame.transform.scale(surface, (w * scale, h * scale)), (0, 0))
        pygame.display.flip()
        clock = pygame.time.Clock()
        while True:
            event = pygame.event.poll()
            if event.type == pygame.QUIT or (event.type == pygame.KEYDOWN
                                             and event.key in (pygame.K_ESCAPE, pygame.K_q)):
                return
            clock.tick(30)
    finally:
        pygame.quit()
