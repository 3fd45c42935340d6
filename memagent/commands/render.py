"""``memagent render RUN_DIR --out FILE.gif``: watch a trained agent, with its memory beside it.

Frames come from the env's ``render_mode="rgb_array"``. In worlds with a cue (the T-maze's
colour, KeyDoor's key, RecallSequence's items) the episodes take the cues in turn, by default
one episode per cue value, so a policy that ignores the cue shows its failures. After every
action the policy's modules are asked for ``inspect()`` (the
:class:`memagent.memory.core.MemoryCore` contract: a dict of numpy arrays describing the
last read, e.g. the hopfield core's ``attention`` over stored steps or the nmn core's
``bank`` activity); each array is drawn as a heatmap (2-D: rows x stored steps) or bars (1-D)
in a panel to the right of the screen, with a title, its axes and a colour bar of its values.

An agent's :meth:`~memagent.agent.Agent.frame_views` of the frame itself are drawn too: a
:class:`~memagent.agent.ScreenView` beside the screen at its scale, each picture labelled
above (the screen as ``"real"``, the others by their keys; the MAN agent's ``"reconstruction"``
and ``"imagined"``), a ``str`` as a line of text below.

Writes a GIF (Pillow), a folder of PNGs (``--out DIR/``), or an MP4 when ``imageio-ffmpeg``
is installed.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import NamedTuple

import numpy as np

from memagent.agent import ScreenView, memory_views
from memagent.cli import CLIError

PANEL_WIDTH = 280
TEXT = (230, 230, 230)
LABEL_HEIGHT = 14  # the strip above the screens that names them (when there are ScreenViews)
SCREEN_GAP = 8     # pixels between the real screen and each ScreenView
LINE_HEIGHT = 14   # one line of text below the screens (the caption, each str view)
#: view name -> (title, row axis, column axis); other views: (name, "row", "column")
LABELS = {"attention": ("hopfield read weights", "head", "stored step: oldest -> newest"),
          "bank": ("NMN memory banks", "neuron", "memory slot")}


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "render", help="render a run's agent to a GIF / PNG folder, memory state beside the screen",
        description="Play episodes with a run's newest model and write the frames.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="a folder written by memagent train, or `latest` (the newest run in runs/)")
    p.add_argument("--out", required=True, metavar="FILE",
                   help="FILE.gif, FILE.mp4 (needs imageio-ffmpeg) or DIR/ for PNG frames; "
                   "FILE.png for an agent drawn as one figure (man)")
    p.add_argument("--episodes", type=int, default=None, metavar="N",
                   help="episodes (default: one per cue value in worlds with a cue, e.g. 2 on the "
                   "T-maze, else 2); the cues are taken in turn")
    p.add_argument("--random-cues", action="store_true",
                   help="draw each episode's cue at random, as in training")
    p.add_argument("--env", default=None, metavar="ENV_ID", help="render another env (same observations)")
    p.add_argument("--stochastic", action="store_true", help="sample actions (default: deterministic)")
    p.add_argument("--seed", type=int, default=None, help="env seed (default: the run's seed + 1000)")
    p.add_argument("--fps", type=float, default=6.0, help="frames per second (default 6)")
    p.add_argument("--max-frames", type=int, default=1000, metavar="N", help="stop after N frames (default 1000)")
    p.set_defaults(func=render)


def _out_kind(out: str) -> str:
    path = Path(out)
    suffix = path.suffix.lower()
    if out.endswith(("/", "\\")) or (path.is_dir()) or suffix == "":
        return "png"
    if suffix == ".gif":
        return "gif"
    if suffix == ".mp4":
        try:
            import imageio.v2  # noqa: F401
            import imageio_ffmpeg  # noqa: F401
        except ImportError:
            raise CLIError("writing .mp4 needs imageio and imageio-ffmpeg (pip install imageio "
                           "imageio-ffmpeg); or use --out FILE.gif or --out DIR/ for PNGs") from None
        return "mp4"
    raise CLIError(f"--out must end in .gif or .mp4, or name a folder for PNGs; got {out!r}")


def prepare_views(views: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """What to draw: the hopfield ``attention`` cut to the filled slots (``positions >= 0``,
    oldest stored step first), batch dimension of size 1 dropped. Pictures
    (:class:`~memagent.agent.ScreenView`) and text (``str``) pass unchanged."""
    other = {k: v for k, v in views.items() if isinstance(v, (ScreenView, str))}
    views = {k: np.asarray(v, dtype=float) for k, v in views.items() if k not in other}
    positions = views.pop("positions", None)
    if positions is not None and "attention" in views:
        filled = positions.reshape(-1, positions.shape[-1])[0] >= 0  # (N,) of env 0
        att = views["attention"]
        if att.shape[-1] == filled.shape[0]:
            views["attention"] = att[..., filled] if filled.any() else att[..., :1] * 0
    return {**{k: v[0] if v.ndim >= 2 and v.shape[0] == 1 else v for k, v in views.items()}, **other}


def _colormap(x: np.ndarray) -> np.ndarray:
    """(...,) in [0, 1] -> (..., 3) uint8 with matplotlib's viridis."""
    from matplotlib import colormaps

    return (colormaps["viridis"](np.clip(x, 0, 1))[..., :3] * 255).astype(np.uint8)


def _resize(img: np.ndarray, h: int, w: int) -> np.ndarray:
    """Nearest-neighbour resize of (H, W, C)."""
    rows = (np.arange(h) * img.shape[0] // max(h, 1)).clip(0, img.shape[0] - 1)
    cols = (np.arange(w) * img.shape[1] // max(w, 1)).clip(0, img.shape[1] - 1)
    return img[rows][:, cols]


def draw_view(values: np.ndarray, h: int, w: int) -> np.ndarray:
    """One memory array as a (h, w, 3) picture: a heatmap for 2-D and more, bars for 1-D."""
    a = np.asarray(values, dtype=float)
    a = np.nan_to_num(a.squeeze())
    canvas = np.full((h, w, 3), 24, dtype=np.uint8)
    if a.size == 0:
        return canvas
    a = a.reshape(1) if a.ndim == 0 else a
    lo, hi = float(a.min()), float(a.max())
    norm = (a - lo) / (hi - lo) if hi > lo else np.full_like(a, 0.5 if hi != 0 else 0.0)
    if a.ndim == 1:  # bars
        n = len(norm)
        cols = (np.arange(w) * n // w).clip(0, n - 1)
        heights = (norm[cols] * (h - 2)).astype(int)
        colour = _colormap(norm[cols])
        ys = np.arange(h)[:, None]
        mask = ys >= (h - 1 - heights)[None, :]
        canvas[mask] = np.broadcast_to(colour[None], (h, w, 3))[mask]
        return canvas
    rows = norm.reshape(-1, norm.shape[-1])[:64]  # (heads/neurons..., stored steps), <= 64 rows
    return _resize(_colormap(rows), h, w)


def _value_range(values: np.ndarray) -> tuple[float, float]:
    a = np.nan_to_num(np.asarray(values, dtype=float))
    return (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)


def _vertical_text(text: str, height: int) -> np.ndarray:
    """``text`` written bottom to top, as an ``(<= height, 12, 3)`` picture (a y-axis label)."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (max(height, 1), 12), (16, 16, 16))
    ImageDraw.Draw(img).text((1, 0), text, fill=TEXT)
    return np.asarray(img.rotate(90, expand=True))[-height:]


def draw_panel(views: dict[str, np.ndarray], height: int) -> np.ndarray:
    """The memory panel, ``(height, PANEL_WIDTH, 3)``: for each view (at most 3) its title
    and shape, the heatmap or bars (:func:`draw_view`) between its row axis (left) and column
    axis (below), and a colour bar with the values of its brightest and darkest cells."""
    from PIL import Image, ImageDraw

    panel = np.full((height, PANEL_WIDTH, 3), 16, dtype=np.uint8)
    keys = list(views)[:3]
    slot = height // max(len(keys), 1)
    left, bar = 16, PANEL_WIDTH - 46  # body from `left` to `bar - 4`; colour bar 8 px wide
    texts = []
    for i, key in enumerate(keys):
        values = np.asarray(views[key])
        title, rows, cols = LABELS.get(key, (key, "row", "column"))
        if values.squeeze().ndim <= 1:  # drawn as bars
            rows, cols = "value", rows if key in LABELS else "entry"
        top, body = i * slot + 14, max(slot - 28, 4)
        if not values.size:  # before the first read of an episode
            texts.append(((4, i * slot + 1), f"{title}: nothing read yet"))
            continue
        panel[top:top + body, left:bar - 4] = draw_view(values, body, bar - 4 - left)
        panel[top:top + body, bar:bar + 8] = _colormap(np.linspace(1, 0, body))[:, None]
        label = _vertical_text(rows, body)
        panel[top + body - label.shape[0]:top + body, 2:2 + label.shape[1]] = label
        lo, hi = _value_range(values)
        shape = "x".join(str(d) for d in values.shape)
        texts += [((4, i * slot + 1), f"{title} ({shape})"), ((left, top + body + 1), cols),
                  ((bar + 11, top - 3), f"{hi:.2g}"), ((bar + 11, top + body - 9), f"{lo:.2g}")]
    pil = Image.fromarray(panel)
    draw = ImageDraw.Draw(pil)
    for xy, text in texts:
        draw.text(xy, text, fill=TEXT)
    return np.asarray(pil)


class ComposeLayout(NamedTuple):
    """Where :func:`compose` put things (for readers of the pixels, tests included): each
    picture's box ``(y0, x0, y1, x1)`` under its label (``"real"`` first), the label strip's
    height, and the top of the text lines below the pictures."""

    boxes: dict[str, tuple[int, int, int, int]]
    label_height: int
    text_top: int


def compose(frame: np.ndarray, views: dict, caption: str, return_layout: bool = False):
    """The screen (scaled to >= 240 px high), the pictures among ``views``
    (:class:`~memagent.agent.ScreenView`, at the same scale, each right of the last, all
    labelled in a strip above: the screen as ``"real"``), the memory panel
    (:func:`draw_panel`) of the arrays when there are any, the text views (``str``, one line
    each) and the caption below. ``return_layout``: also the :class:`ComposeLayout`."""
    from PIL import Image, ImageDraw

    screens = {k: v.image for k, v in views.items() if isinstance(v, ScreenView)}
    texts = [v for v in views.values() if isinstance(v, str)]
    arrays = {k: v for k, v in views.items() if not isinstance(v, (ScreenView, str))}
    frame = np.asarray(frame, dtype=np.uint8)[..., :3]
    scale = max(1, 240 // max(frame.shape[0], 1))
    pictures = {"real": frame, **screens} if screens else {"": frame}
    top = LABEL_HEIGHT if screens else 0
    h = frame.shape[0] * scale
    parts, boxes, x = [], {}, 0
    for label, picture in pictures.items():
        picture = np.asarray(picture, dtype=np.uint8)[..., :3]
        big = picture.repeat(scale, 0).repeat(scale, 1)
        if big.shape[:2] != (h, frame.shape[1] * scale):
            big = _resize(big, h, frame.shape[1] * scale)
        if parts:
            parts.append(np.zeros((h, SCREEN_GAP, 3), np.uint8))
            x += SCREEN_GAP
        parts.append(big)
        boxes[label] = (top, x, top + h, x + big.shape[1])
        x += big.shape[1]
    if arrays:
        parts.append(draw_panel(arrays, h))
    img = np.concatenate(parts, axis=1)
    lines = [*texts, caption]
    out = np.zeros((top + h + LINE_HEIGHT * len(lines) + 2, img.shape[1], 3), dtype=np.uint8)
    out[top:top + h] = img
    pil = Image.fromarray(out)
    draw = ImageDraw.Draw(pil)
    if screens:
        for label, (_, x0, _, _) in boxes.items():
            draw.text((x0 + 2, 1), label, fill=TEXT)
    for i, line in enumerate(lines):
        draw.text((4, top + h + 2 + LINE_HEIGHT * i), line, fill=TEXT)
    out = np.asarray(pil)
    return (out, ComposeLayout(boxes, top, top + h)) if return_layout else out


def _write(frames: list[np.ndarray], out: str, kind: str, fps: float) -> None:
    from PIL import Image

    if kind == "png":
        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        for i, f in enumerate(frames):
            Image.fromarray(f).save(folder / f"frame_{i:05d}.png")
    elif kind == "gif":
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        images = [Image.fromarray(f) for f in frames]
        images[0].save(out, save_all=True, append_images=images[1:],
                       duration=int(1000 / fps), loop=0)
    else:  # mp4
        import imageio.v2 as imageio

        with imageio.get_writer(out, fps=fps) as writer:
            for f in frames:
                writer.append_data(f[: f.shape[0] // 2 * 2, : f.shape[1] // 2 * 2])


def _engine(venv):
    """The batched gridworld engine behind ``venv`` (a ``GridVecEnv``, or a ``DummyVecEnv`` of
    one gridworld ``Env``, under any VecEnv wrappers); ``None`` for other envs."""
    base = venv.unwrapped
    if hasattr(base, "engine"):
        return base.engine
    envs = getattr(base, "envs", None)
    return getattr(envs[0].unwrapped, "engine", None) if envs else None


def episode_cues(venv, episodes: int | None, random_cues: bool = False) -> tuple[int, list[int] | None]:
    """How many episodes to play and the cue of each (``None``: drawn at random): in a world
    with a cue (``engine.n_cue_values > 0``) the cue values in turn, by default one episode
    per value; elsewhere (or with ``random_cues``) 2 episodes by default.

    :raises ValueError: ``episodes < 1``.
    """
    if episodes is not None and episodes < 1:
        raise ValueError(f"--episodes must be >= 1, got {episodes}")
    n_cues = getattr(_engine(venv), "n_cue_values", 0)
    if random_cues or not n_cues:
        return episodes or 2, None
    episodes = episodes or n_cues
    return episodes, [e % n_cues for e in range(episodes)]


def play(model, venv, episodes: int, cues: list[int] | None = None, deterministic: bool = True,
         max_frames: int = 1000, hold: int = 3):
    """Play ``episodes`` episodes of ``model`` in ``venv`` (one env, frames in its infos), the
    episodes taking ``cues`` in turn; an episode's last frame is held ``hold`` more frames.
    ``model`` is an :class:`memagent.agent.Agent` (``act``, ``memory_views``, ``frame_views``,
    ``carry_info``) or anything with SB3's ``predict`` and a ``policy`` module.

    :return: ``records``, one ``(frame, views, caption)`` per frame (the memory views of the
        act that led to the frame, and the agent's ``frame_views`` of the frame itself), and
        ``outcomes``, one ``(cue or None, success or None)`` per finished episode.
    """
    from memagent.evaluation import raw_reward

    base = venv.unwrapped
    if cues:
        _engine(venv).queue_cues(cues)  # consumed by the reset below and the autoresets
    obs, state = venv.reset(), None
    frame = base.reset_infos[0].get("frame")
    if frame is None:
        raise CLIError("the env returned no rgb_array frame; it cannot be rendered")
    frame_views = getattr(model, "frame_views", lambda frame, info: {})
    carry_info = getattr(model, "carry_info", lambda state, info: state)
    state = carry_info(state, base.reset_infos[0])

    def title(e: int) -> str:
        return f"episode {e}" + (f" (cue {cues[e - 1]})" if cues else "")

    def reset_record(e: int):
        info = base.reset_infos[0]
        return info["frame"], prepare_views(frame_views(info["frame"], info)), f"{title(e)}  step 0"

    episode_start = np.ones(1, dtype=bool)
    records, outcomes, episode, t, ret = [reset_record(1)], [], 1, 0, 0.0
    while episode <= episodes and len(records) < max_frames:
        act = getattr(model, "act", None) or model.predict
        action, state = act(obs, state=state, episode_start=episode_start, deterministic=deterministic)
        views = prepare_views(model.memory_views() if hasattr(model, "memory_views")
                              else memory_views(model.policy))
        obs, reward, done, infos = venv.step(action)
        views.update(prepare_views(frame_views(infos[0]["frame"], infos[0])))
        state = carry_info(state, base.reset_infos[0] if done[0] else infos[0])
        t, ret = t + 1, ret + float(raw_reward(venv, reward)[0])
        caption = f"{title(episode)}  step {t}  return {ret:.2f}"
        if done[0]:
            s = infos[0].get("is_success")
            outcomes.append((cues[episode - 1] if cues else None, None if s is None else bool(s)))
            if s is not None:
                caption += "  success" if s else "  failure"
        records.append((infos[0]["frame"], views, caption))
        if done[0]:
            records.extend([records[-1]] * hold)
            episode, t, ret = episode + 1, 0, 0.0
            if episode <= episodes:
                records.append(reset_record(episode))
        episode_start = done
    return records, outcomes


def uniform_views(records):
    """The records with the same views on every frame, so that every frame has one size: at
    most 3 memory arrays (an empty one where a frame has none: "nothing read yet"), every
    picture (black where a frame has none) and every text line (blank where none)."""
    seen = {}
    for _, views, _ in records:
        for k, v in views.items():
            seen.setdefault(k, v)
    arrays = [k for k, v in seen.items() if not isinstance(v, (ScreenView, str))][:3]
    blank = {k: ScreenView(np.zeros_like(v.image)) if isinstance(v, ScreenView) else ""
             for k, v in seen.items() if isinstance(v, (ScreenView, str))}
    blank.update({k: np.zeros(0) for k in arrays})
    return [(f, {k: views.get(k, b) for k, b in blank.items()}, c) for f, views, c in records]


def render(args: argparse.Namespace) -> int:
    from memagent.agent import get_agent, load_agent
    from memagent.experiment import eval_seed
    from memagent.runs import check_run_dir, read_config

    run_dir = check_run_dir(args.run_dir)
    figure = get_agent(read_config(run_dir).agent).render_kind_for(args.out) == "figure"
    if not figure:
        kind = _out_kind(args.out)  # before loading: a wrong --out fails fast
    agent = load_agent(run_dir, env_id=args.env)
    seed = eval_seed(agent.config) if args.seed is None else args.seed
    if figure:
        print(agent.draw(Path(args.out), seed=seed, env_id=args.env))
        return 0
    venv = agent.make_env(1, seed=seed, render=True)
    episodes, cues = episode_cues(venv, args.episodes, args.random_cues)
    records, outcomes = play(agent, venv, episodes, cues, deterministic=not args.stochastic,
                             max_frames=args.max_frames, hold=max(1, int(args.fps // 2)))
    venv.close()
    frames = [compose(f, views, c) for f, views, c in uniform_views(records)]
    _write(frames, args.out, kind, args.fps)
    keys = list(dict.fromkeys(k for _, views, _ in records for k in views))
    shown = ", ".join(keys) if keys else "none (this agent has no memory to show)"
    known = [(c, s) for c, s in outcomes if s is not None]
    tally = f"; successes {sum(s for _, s in known)}/{len(known)}" if known else ""
    if cues and known:
        tally += " (" + ", ".join(f"cue {c}: {'success' if s else 'failure'}" for c, s in known) + ")"
    print(f"memagent render: {len(outcomes)} episode(s), {len(frames)} frames -> {args.out}; "
          f"memory views: {shown}{tally}")
    return 0
