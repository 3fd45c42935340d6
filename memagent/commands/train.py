"""``memagent train``: train an agent into a run folder (see :mod:`memagent.runs`).

Defaults come from :mod:`memagent.agents.presets`; ``memagent train`` alone trains the
hopfield ``memory-ppo`` agent on ``memagent/TMaze-v0``. Ctrl-C stops at the next step, saves
model.zip and a checkpoint, and exits with status 130; ``--resume RUN_DIR`` continues.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import signal
import sys
import time
import warnings
from pathlib import Path

from memagent.cli import CLIError

_RESUME_FIXED = ("env", "agent", "memory", "n_envs", "seed", "config", "run_dir", "curriculum")


def register(subparsers) -> None:
    from memagent.agents.presets import AGENTS

    agents = "; ".join(f"{a}: {s.description}" for a, s in AGENTS.items())
    p = subparsers.add_parser(
        "train", help="train an agent into a run folder (runs/...)",
        description="Train an agent; writes config.json, model.zip, checkpoints/, TensorBoard "
        "events, episodes.csv and versions.json into a run folder. Unset options come from the "
        "preset for the env and agent (memagent/agents/presets.py).",
    )
    p.add_argument("--env", default=None, metavar="ENV_ID", help="gymnasium id (default memagent/TMaze-v0)")
    p.add_argument("--agent", default=None, metavar="AGENT", help=f"default memory-ppo. {agents}")
    p.add_argument("--memory", default=None, metavar="CORE", help="memory-ppo core: lstm, gru, nmn, hopfield (default hopfield)")
    p.add_argument("--steps", type=int, default=None, metavar="N", help="total env steps (default: the preset's); with --resume, the new total")
    p.add_argument("--n-envs", type=int, default=None, metavar="N", help="parallel envs (default: the preset's)")
    p.add_argument("--curriculum", default=None, metavar="L:N,...",
                   help="train N steps at length L first, for each stage in order, then on the env "
                   "itself (T-mazes; e.g. 10:40000,100:100000); 'off' drops the preset's")
    p.add_argument("--seed", type=int, default=None, metavar="S", help="one seed for everything (default 0)")
    p.add_argument("--device", default=None, metavar="auto|cpu|cuda", help="default auto: CUDA when present")
    p.add_argument("--config", default=None, metavar="FILE", help="JSON or TOML file of config keys (docs/cli.md); flags win over it")
    p.add_argument("--run-dir", default=None, metavar="DIR", help="the run folder to create (default runs/{env}__{agent}__{seed}__{time})")
    p.add_argument("--runs-root", default="runs", metavar="DIR", help="parent of new run folders (default runs)")
    p.add_argument("--resume", default=None, metavar="RUN_DIR", help="continue a run from its latest checkpoint (`latest`: the newest run in runs/)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar, one summary line at the end")
    p.set_defaults(func=train)


def _config_from_args(args):
    from memagent.agents import presets
    from memagent.runs import TrainConfig, load_config_file

    values = load_config_file(args.config) if args.config else {}
    for flag, key in (("env", "env_id"), ("agent", "agent"), ("memory", "memory"),
                      ("steps", "total_timesteps"), ("n_envs", "n_envs"), ("seed", "seed"),
                      ("device", "device")):
        if getattr(args, flag) is not None:
            values[key] = getattr(args, flag)
    if args.curriculum is not None:
        from memagent.curriculum import parse_curriculum

        off = args.curriculum.strip().lower() in ("off", "none", "")
        values["curriculum"] = [] if off else parse_curriculum(args.curriculum)
    if "env_id" not in values and values.get("agent") in presets.DEFAULT_ENVS:
        values["env_id"] = presets.DEFAULT_ENVS[values["agent"]]
    config = TrainConfig(**values)
    presets.check_agent(config.agent)
    presets.check_env(config.env_id)
    return presets.resolve(config, set(values))


def train(args: argparse.Namespace) -> int:
    from memagent import runs

    if args.resume:
        fixed = [f"--{k.replace('_', '-')}" for k in _RESUME_FIXED if getattr(args, k) is not None]
        if fixed:
            raise CLIError(f"--resume keeps the run's config; drop {', '.join(fixed)} (only --steps and --device may change)")
        run_dir = runs.check_run_dir(args.resume)
        config = runs.read_config(run_dir)
        if config.agent == "man":
            raise CLIError("the man agent cannot resume; train a new run")
        changes = {}
        if args.steps is not None:
            changes["total_timesteps"] = args.steps
        if args.device is not None:
            changes["device"] = args.device
        config = dataclasses.replace(config, **changes)
    else:
        config = _config_from_args(args)
        run_dir = Path(args.run_dir) if args.run_dir else runs.new_run_dir(config, args.runs_root)
        if run_dir.exists() and any(run_dir.iterdir()):
            raise CLIError(f"run folder {str(run_dir)!r} already exists and is not empty; "
                           "pick another --run-dir or continue it with --resume")
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", config.device):
        raise CLIError(f"--device must be auto, cpu or cuda[:i], got {config.device!r}")
    if config.agent == "man":
        return _run_man(config, run_dir)
    return _run(config, run_dir, resume=bool(args.resume), progress=not args.no_progress)


def _run_man(config, run_dir: Path) -> int:
    """MAN: Q-learning, acting and filing screens, long-term memory; saved under run_dir/man."""
    from memagent import runs
    from memagent.agents import presets
    from memagent.utils import resolve_device, set_seed

    device = resolve_device(config.device)
    set_seed(config.seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    runs.write_json(run_dir / runs.CONFIG_FILE, dataclasses.asdict(config))
    runs.write_json(run_dir / runs.VERSIONS_FILE, runs.versions(device))
    runs.write_state(run_dir, status="running", steps=0, device=str(device))
    print(f"memagent train: man ({config.memory}) on {config.env_id}, seed {config.seed}, "
          f"device {device} -> {run_dir}")
    t0 = time.perf_counter()
    agent = presets.train_man(config, run_dir / "man", device,
                              log=lambda msg: print(f"memagent train: {msg}", flush=True))
    cov = agent.coverage()
    runs.write_state(run_dir, status="completed", steps=config.total_timesteps,
                     coverage=cov["fraction"], last_success_rate=None)
    print(f"memagent train: completed in {time.perf_counter() - t0:.1f} s; "
          f"{int(cov['visited'].sum())}/{agent.n_states} states in memory; saved {run_dir}; "
          f"see it with: memagent render {run_dir} --out man.png")
    return 0


def _run(config, run_dir: Path, resume: bool, progress: bool) -> int:
    from memagent import runs
    from memagent.agents import presets
    from memagent.utils import resolve_device, set_seed

    device = resolve_device(config.device)  # the small-network check follows once the model exists
    if config.device.startswith("cuda") and device.type != "cuda":
        print("memagent train: warning: CUDA was asked for but torch sees no GPU "
              "(torch.cuda.is_available() is False); training on the CPU", file=sys.stderr)
    set_seed(config.seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    if resume:
        ckpt, norm = runs.latest_model(run_dir)
        venv, _ = presets.wrap_venv(config, presets.make_venv(config), norm_path=norm)
        model = presets.load_model(config, ckpt, venv, device=device)
        model.tensorboard_log = str(run_dir / "tb")
        print(f"memagent train: resuming {run_dir} from {ckpt.name} at step {model.num_timesteps:,}")
    else:
        venv, policy_kwargs = presets.wrap_venv(config, presets.make_venv(config))
        model = presets.build_model(config, venv, policy_kwargs, device, str(run_dir / "tb"))
        runs.write_json(run_dir / runs.CONFIG_FILE, dataclasses.asdict(config))
    n_params = sum(p.numel() for p in model.policy.parameters())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        resolve_device(str(device), n_params)  # warns for a tiny network on CUDA
    for w in caught:
        print(f"memagent train: warning: {w.message}", file=sys.stderr)
    runs.write_json(run_dir / runs.VERSIONS_FILE, runs.versions(device))
    if resume:
        runs.write_json(run_dir / runs.CONFIG_FILE, dataclasses.asdict(config))
    remaining = config.total_timesteps - model.num_timesteps
    if remaining <= 0:
        print(f"memagent train: {run_dir} already has {model.num_timesteps:,} of "
              f"{config.total_timesteps:,} steps; pass --steps N (a larger total) to go on")
        return 0
    print(f"memagent train: {config.agent}"
          f"{f' ({config.memory})' if config.agent == 'memory-ppo' else ''} on {config.env_id}, "
          f"{config.total_timesteps:,} steps, {config.n_envs} envs, seed {config.seed}, "
          f"device {device}, {n_params:,} parameters -> {run_dir}")
    return _learn(model, config, run_dir, remaining, resume, progress, str(device))


def _learn(model, config, run_dir, remaining, resume, progress, device) -> int:
    from stable_baselines3.common.callbacks import CallbackList

    from memagent import runs
    from memagent.agents import presets

    log = runs.EpisodeLog(run_dir)
    callback = _make_callback(config, run_dir, log, progress)
    curriculum = presets.curriculum_callback(config, verbose=0 if progress else 1)
    stop = {"sigint": False}

    def on_sigint(signum, frame):
        if stop["sigint"]:  # a second Ctrl-C: give up at once
            raise KeyboardInterrupt
        stop["sigint"] = True
        print("\nmemagent train: Ctrl-C: stopping after this step and saving (Ctrl-C again to abort)",
              file=sys.stderr)

    callback.stop = stop
    previous = signal.signal(signal.SIGINT, on_sigint)
    runs.write_state(run_dir, status="running", steps=model.num_timesteps, device=device)
    start_steps, t0 = model.num_timesteps, time.perf_counter()
    try:
        model.learn(remaining, callback=callback if curriculum is None else CallbackList([curriculum, callback]),
                    reset_num_timesteps=not resume,
                    tb_log_name="tb", progress_bar=False)
    finally:
        signal.signal(signal.SIGINT, previous)
        log.close()
    elapsed = time.perf_counter() - t0
    steps = model.num_timesteps
    runs.save_final(model, run_dir)
    runs.save_checkpoint(model, run_dir, steps, keep=config.keep_checkpoints)
    done = steps >= config.total_timesteps
    status = "completed" if done and not stop["sigint"] else "interrupted"
    sr = log.success_rate()
    runs.write_state(run_dir, status=status, steps=steps, last_success_rate=sr,
                     episodes=runs.read_state(run_dir).get("episodes", 0) + log.episodes)
    rate = (steps - start_steps) / max(elapsed, 1e-9)
    sr_text = "n/a" if sr is None else f"{sr:.3f}"
    print(f"memagent train: {status} {steps:,} steps in {elapsed:.1f} s ({rate:,.0f} steps/s); "
          f"success rate (last {len(log.recent_success)} episodes) {sr_text}; saved {run_dir}")
    if stop["sigint"]:
        print(f"memagent train: interrupted; continue with: memagent train --resume {run_dir}",
              file=sys.stderr)
        return 130
    return 0


def _make_callback(config, run_dir, log, progress):
    from stable_baselines3.common.callbacks import BaseCallback

    from memagent import runs

    class RunCallback(BaseCallback):
        """episodes.csv rows, periodic atomic checkpoints, the progress bar and Ctrl-C."""

        stop: dict

        def _on_training_start(self) -> None:
            self.last_ckpt = self.num_timesteps
            self.t0, self.steps0 = time.perf_counter(), self.num_timesteps
            self.bar = _Progress(config.total_timesteps, self.num_timesteps) if progress else None

        def _on_step(self) -> bool:
            for info in self.locals.get("infos", ()):
                ep = info.get("episode")
                if ep is not None:
                    log.add(self.num_timesteps, float(ep["r"]), int(ep["l"]), info.get("is_success"))
            every = config.checkpoint_every
            if every and self.num_timesteps - self.last_ckpt >= every:
                log.flush()
                runs.save_checkpoint(self.model, run_dir, self.num_timesteps, keep=config.keep_checkpoints)
                runs.write_state(run_dir, steps=self.num_timesteps, last_success_rate=log.success_rate())
                self.last_ckpt = self.num_timesteps
            if self.bar is not None:
                self.bar.update(self.num_timesteps, log.success_rate())
            return not self.stop["sigint"]

        def _on_training_end(self) -> None:
            if self.bar is not None:
                self.bar.update(self.num_timesteps, log.success_rate(), force=True)
                self.bar.close()

    return RunCallback()


class _Progress:
    """A rich progress bar: steps, steps/s, recent success rate, time left."""

    def __init__(self, total: int, done: int):
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[rate]} steps/s"), TextColumn("success {task.fields[success]}"),
            TimeElapsedColumn(), TextColumn("<"), TimeRemainingColumn(), transient=False,
        )
        self.task = self.progress.add_task("train", total=total, completed=done, rate="-", success="-")
        self.t0, self.done0, self.last = time.perf_counter(), done, 0.0
        self.progress.start()

    def update(self, done: int, success: float | None, force: bool = False) -> None:
        now = time.perf_counter()
        if now - self.last < 0.25 and not force:
            return
        self.last = now
        rate = (done - self.done0) / max(now - self.t0, 1e-9)
        total = max(done, self.progress.tasks[0].total or 0)  # SB3 rounds up to whole rollouts
        self.progress.update(self.task, completed=done, total=total, rate=f"{rate:,.0f}",
                             success="-" if success is None else f"{success:.2f}")

    def close(self) -> None:
        self.progress.stop()
