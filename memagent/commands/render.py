"""``memagent render RUN_DIR --out FILE.gif``: watch a trained agent, with its memory beside it.

Frames come from the env's ``render_mode="rgb_array"``. After every action the policy's
modules are asked for ``inspect()`` (the :class:`memagent.memory.recurrent.MemoryCore`
contract: a dict of numpy arrays describing the last read, e.g. the hopfield core's
``attention`` over stored steps or the nmn core's ``bank`` activity); each array is drawn as
a heatmap (2-D: rows x stored steps) or bars (1-D) in a panel to the right of the screen.

Writes a GIF (Pillow), a folder of PNGs (``--out DIR/``), or an MP4 when ``imageio-ffmpeg``
is installed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from memagent.cli import CLIError

PANEL_WIDTH = 240
LABELS = {"attention": "read weights: heads x stored steps", "bank": "NMN memory banks"}


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "render", help="render a run's agent to a GIF / PNG folder, memory state beside the screen",
        description="Play episodes with a run's newest model and write the frames.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="a folder written by memagent train, or `latest` (the newest run in runs/)")
    p.add_argument("--out", required=True, metavar="FILE",
                   help="FILE.gif, FILE.mp4 (needs imageio-ffmpeg) or DIR/ for PNG frames")
    p.add_argument("--episodes", type=int, default=2, metavar="N", help="episodes (default 2)")
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


def memory_views(policy) -> dict[str, np.ndarray]:
    """Everything the policy's modules report through ``inspect()`` after the last forward."""
    views: dict[str, np.ndarray] = {}
    for module in policy.modules():
        inspect = getattr(module, "inspect", None)
        if callable(inspect):
            try:
                found = inspect() or {}
            except Exception:  # a core that has not run yet
                continue
            for key, value in found.items():
                views.setdefault(key, np.asarray(value, dtype=float))
    return views


def prepare_views(views: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """What to draw: the hopfield ``attention`` cut to the filled slots (``positions >= 0``,
    oldest stored step first), batch dimension of size 1 dropped."""
    views = {k: np.asarray(v, dtype=float) for k, v in views.items()}
    positions = views.pop("positions", None)
    if positions is not None and "attention" in views:
        filled = positions.reshape(-1, positions.shape[-1])[0] >= 0  # (N,) of env 0
        att = views["attention"]
        if att.shape[-1] == filled.shape[0]:
            views["attention"] = att[..., filled] if filled.any() else att[..., :1] * 0
    return {k: v[0] if v.ndim >= 2 and v.shape[0] == 1 else v for k, v in views.items()}


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


def compose(frame: np.ndarray, views: dict[str, np.ndarray], caption: str) -> np.ndarray:
    """The screen (scaled to >= 240 px high), a caption, and one panel per memory view."""
    from PIL import Image, ImageDraw

    frame = np.asarray(frame, dtype=np.uint8)[..., :3]
    scale = max(1, 240 // max(frame.shape[0], 1))
    frame = frame.repeat(scale, 0).repeat(scale, 1)
    h = frame.shape[0]
    parts = [frame]
    if views:
        panel = np.full((h, PANEL_WIDTH, 3), 16, dtype=np.uint8)
        keys = list(views)[:3]
        slot = h // len(keys)
        for i, key in enumerate(keys):
            body = max(slot - 16, 4)
            panel[i * slot + 14 : i * slot + 14 + body, 4:-4] = draw_view(views[key], body, PANEL_WIDTH - 8)
        parts.append(panel)
    img = np.concatenate(parts, axis=1)
    out = np.zeros((h + 16, img.shape[1], 3), dtype=np.uint8)
    out[:h] = img
    pil = Image.fromarray(out)
    draw = ImageDraw.Draw(pil)
    draw.text((4, h + 2), caption, fill=(230, 230, 230))
    if views:
        for i, key in enumerate(keys):
            shape = "x".join(str(s) for s in views[key].shape) if views[key].size else "-"
            label = f"{LABELS.get(key, key)} ({shape})"
            draw.text((frame.shape[1] + 6, i * (h // len(keys)) + 1), label, fill=(230, 230, 230))
    return np.asarray(pil)


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


def _render_man(run_dir: Path, args) -> int:
    """MAN's memory is a picture of every state: imagined | real screens (``memagent imagine``)."""
    from memagent.commands import imagine
    from memagent.runs import read_config

    if not str(args.out).lower().endswith(".png"):
        raise CLIError("the man agent renders its imagined screen of every state as one "
                       f"picture: pass --out FILE.png (got {args.out!r})")
    config = read_config(run_dir)
    return imagine.run(argparse.Namespace(
        env=args.env or config.env_id, out=args.out, run=str(run_dir / "man"), save_run=None,
        device="cpu", seed=config.seed if args.seed is None else args.seed, judge_steps=0,
        show=False))


def render(args: argparse.Namespace) -> int:
    from memagent.evaluation import raw_reward
    from memagent.runs import check_run_dir, load_run, read_config

    run_dir = check_run_dir(args.run_dir)
    if read_config(run_dir).agent == "man":
        return _render_man(run_dir, args)
    kind = _out_kind(args.out)
    if args.episodes < 1:
        raise ValueError(f"--episodes must be >= 1, got {args.episodes}")
    config, model, venv = load_run(run_dir, env_id=args.env, seed=args.seed, render=True)
    base = venv.unwrapped
    obs, state = venv.reset(), None
    frame = base.reset_infos[0].get("frame")
    if frame is None:
        raise CLIError(f"{config.env_id} returned no rgb_array frame; it cannot be rendered")
    episode_start = np.ones(1, dtype=bool)
    records, episode, t, ret, successes = [(frame, {}, "episode 1  step 0")], 1, 0, 0.0, []
    while episode <= args.episodes and len(records) < args.max_frames:
        action, state = model.predict(obs, state=state, episode_start=episode_start,
                                      deterministic=not args.stochastic)
        views = prepare_views(memory_views(model.policy))
        obs, reward, done, infos = venv.step(action)
        t, ret = t + 1, ret + float(raw_reward(venv, reward)[0])
        caption = f"episode {episode}  step {t}  return {ret:.2f}"
        if done[0]:
            s = infos[0].get("is_success")
            if s is not None:
                successes.append(bool(s))
                caption += "  success" if s else "  failure"
        records.append((infos[0]["frame"], views, caption))
        if done[0]:
            records.extend([records[-1]] * max(1, int(args.fps // 2)))  # hold the last frame
            episode, t, ret = episode + 1, 0, 0.0
            if episode <= args.episodes:
                records.append((base.reset_infos[0]["frame"], {}, f"episode {episode}  step 0"))
        episode_start = done
    venv.close()
    keys = list(dict.fromkeys(k for _, views, _ in records for k in views))[:3]
    frames = [compose(f, {k: views.get(k, np.zeros(0)) for k in keys}, c) for f, views, c in records]
    _write(frames, args.out, kind, args.fps)
    shown = ", ".join(keys) if keys else "none (this agent has no memory to show)"
    tally = f"; successes {sum(successes)}/{len(successes)}" if successes else ""
    print(f"memagent render: {min(episode - 1, args.episodes)} episode(s), {len(frames)} frames "
          f"-> {args.out}; memory views: {shown}{tally}")
    return 0
