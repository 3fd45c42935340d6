"""Figures of imagined screens (MAN §4.2, the figure of every state's generated screen).

:func:`state_figure` lays screens out as the paper does: position horizontally, direction
vertically (``state_id = direction * n_positions + position``), with the imagined screens on
the left panel and real screens of the same states on the right. A state the agent never
visited is drawn greyed out with a red cross in both panels (its imagined screen is only the
prior's sample; its real cell shows what the caller passes, e.g. the env's noise-free
``canonical_screen``, or black). Written as PNG with pygame; :func:`show` opens a
pygame window.

The figure reads on its own: a title (what is shown, of which memory and env), the panels
named above ("imagined", "real"), the positions numbered below the columns with the axis
named ("position"), the directions named left of the rows with the axis named ("direction"),
and a legend below that shows the unvisited-state marker and says what it means.

Geometry (for readers of the pixels, tests included): :class:`Layout` gives every cell's box,
the title strip and the legend's marker (:meth:`Layout.labelled` is the layout
:func:`state_figure` draws).
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

RED = np.array([255, 0, 0], np.uint8)
BACKGROUND = np.array([255, 255, 255], np.uint8)
INK = (0, 0, 0)  # the text
PANEL_GAP = 16  # pixels between the imagined and the real panel
LINE = 12       # one line of text
TITLE_LINES = 2
#: margins of the labelled figure: title and panel names above, row names and the vertical
#: axis label left, position numbers, the axis label and the legend below
TOP, LEFT, BOTTOM, RIGHT = TITLE_LINES * LINE + 4 + LINE + 2, 2 * LINE + 42, 3 * LINE + 10, 8
MARKER = 12     # the legend's unvisited marker, MARKER x MARKER


class Layout(NamedTuple):
    """Where cell (panel, direction, position) lies: ``box(...) -> (y0, x0, y1, x1)``; the
    grid starts ``top`` pixels down and ``left`` across (0: the bare grid)."""

    n_positions: int
    n_directions: int
    height: int
    width: int
    pad: int
    panels: int
    top: int = 0
    left: int = 0
    bottom: int = 0
    right: int = 0

    @classmethod
    def labelled(cls, n_positions: int, n_directions: int, height: int, width: int,
                 pad: int = 2, panels: int = 2) -> Layout:
        """The layout :func:`state_figure` draws, with the title, axes and legend around it."""
        return cls(n_positions, n_directions, height, width, pad, panels, TOP, LEFT, BOTTOM, RIGHT)

    @property
    def panel_width(self) -> int:
        return self.n_positions * (self.width + self.pad) + self.pad

    @property
    def grid_height(self) -> int:
        return self.n_directions * (self.height + self.pad) + self.pad

    @property
    def shape(self) -> tuple[int, int]:
        return (self.top + self.grid_height + self.bottom,
                self.left + self.panels * self.panel_width + (self.panels - 1) * PANEL_GAP + self.right)

    def box(self, panel: int, direction: int, position: int) -> tuple[int, int, int, int]:
        y0 = self.top + self.pad + direction * (self.height + self.pad)
        x0 = (self.left + panel * (self.panel_width + PANEL_GAP) + self.pad
              + position * (self.width + self.pad))
        return y0, x0, y0 + self.height, x0 + self.width

    def panel_x(self, panel: int) -> int:
        """The left edge of a panel."""
        return self.left + panel * (self.panel_width + PANEL_GAP)

    @property
    def title_box(self) -> tuple[int, int, int, int]:
        """The title strip, ``(y0, x0, y1, x1)``."""
        return 0, 0, TITLE_LINES * LINE + 4, self.shape[1]

    @property
    def legend_marker(self) -> tuple[int, int, int, int]:
        """The box of the legend's unvisited-state marker."""
        y0 = self.top + self.grid_height + 2 * LINE + 6
        return y0, self.left, y0 + MARKER, self.left + MARKER


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


def _fit(draw, text: str, width: int) -> str:
    """``text`` cut (with "...") to ``width`` pixels."""
    if draw.textlength(text) <= width:
        return text
    while text and draw.textlength(text + "...") > width:
        text = text[:-1]
    return text + "..."


def _label(canvas: np.ndarray, layout: Layout, title: str, direction_names, n_unvisited: int,
           panel_names) -> np.ndarray:
    """Write the title, panel names, axes and legend into the margins of ``canvas``."""
    from PIL import Image, ImageDraw

    pil = Image.fromarray(canvas)
    draw = ImageDraw.Draw(pil)
    width = layout.shape[1] - 8
    words, lines = title.split(), [""]
    for word in words:  # the title on up to TITLE_LINES lines, the last cut to fit
        if lines[-1] and draw.textlength(f"{lines[-1]} {word}") > width and len(lines) < TITLE_LINES:
            lines.append(word)
        else:
            lines[-1] = f"{lines[-1]} {word}".strip()
    for i, line in enumerate(lines):
        draw.text((4, 2 + i * LINE), _fit(draw, line, width), fill=INK)
    head = TITLE_LINES * LINE + 4
    for panel, name in enumerate(panel_names):
        draw.text((layout.panel_x(panel) + layout.pad, head), name, fill=INK)
        for p in range(layout.n_positions):  # position numbers under the columns
            _, x0, _, x1 = layout.box(panel, 0, p)
            label = str(p)
            draw.text(((x0 + x1 - draw.textlength(label)) / 2, layout.top + layout.grid_height + 1),
                      label, fill=INK)
    for d in range(layout.n_directions):  # direction names left of the rows
        y0, _, y1, _ = layout.box(0, d, 0)
        name = str(direction_names[d]) if direction_names is not None else str(d)
        name = _fit(draw, f"{d} {name}" if direction_names is not None else name, layout.left - LINE - 6)
        draw.text((layout.left - 4 - draw.textlength(name), (y0 + y1) / 2 - LINE / 2), name, fill=INK)
    below = layout.top + layout.grid_height + LINE + 2
    draw.text((layout.left + layout.pad, below), _fit(draw, "position (state_id mod n_positions) ->",
                                                       width - layout.left), fill=INK)
    y0, x0, _, x1 = layout.legend_marker
    legend = (f"unvisited: the agent never filed a screen of this state ({n_unvisited} of "
              f"{layout.n_positions * layout.n_directions}); its imagined screen is the prior's")
    draw.text((x1 + 4, y0), _fit(draw, legend, layout.shape[1] - x1 - 8), fill=INK)
    # the vertical axis label, bottom to top, left of the row names
    axis = Image.new("RGB", (layout.grid_height, LINE), tuple(int(v) for v in BACKGROUND))
    ImageDraw.Draw(axis).text((2, 0), _fit(ImageDraw.Draw(axis), "direction ->", layout.grid_height),
                              fill=INK)
    pil.paste(axis.rotate(90, expand=True), (2, layout.top))
    return np.asarray(pil).copy()


def state_figure(imagined: np.ndarray, n_positions: int, n_directions: int,
                 visited: np.ndarray, real: np.ndarray | None = None, pad: int = 2,
                 title: str | None = "imagined and real screens of every state",
                 direction_names=None):
    """The figure as an (H, W, 3) uint8 array, and its :class:`Layout`.

    :param imagined: (n_states, h, w, 3) one imagined screen per state id.
    :param visited: (n_states,) bool: states the agent filed screens of.
    :param real: (n_states, h, w, 3) a real screen per state (greyed and crossed where not
        visited).
    :param title: written above the panels (two lines at most, cut to the figure's width);
        ``None``: the bare grid, no title, names, axes or legend.
    :param direction_names: one name per direction for the row labels (default: the numbers).
    """
    n_states = n_positions * n_directions
    imagined = np.asarray(imagined)
    visited = np.asarray(visited, dtype=bool)
    if len(imagined) != n_states or len(visited) != n_states:
        raise ValueError(f"need one imagined screen and one visited flag per state "
                         f"(n_positions * n_directions = {n_states}), got {len(imagined)} "
                         f"screens, {len(visited)} flags")
    if direction_names is not None and len(direction_names) != n_directions:
        raise ValueError(f"direction_names needs one name per direction ({n_directions}), "
                         f"got {len(direction_names)}")
    h, w = imagined.shape[1:3]
    n_panels = 1 if real is None else 2
    layout = (Layout(n_positions, n_directions, h, w, pad, n_panels) if title is None
              else Layout.labelled(n_positions, n_directions, h, w, pad, n_panels))
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
    if title is None:
        return canvas, layout
    y0, x0, y1, x1 = layout.legend_marker
    canvas[y0:y1, x0:x1] = mark_unvisited(np.full((MARKER, MARKER, 3), 60, np.uint8))
    canvas = _label(canvas, layout, title, direction_names, int((~visited).sum()),
                    ["imagined", "real"][:n_panels])
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
