"""One training run in its run folder: build or resume the agent, learn, checkpoint, evaluate.

``memagent train`` and every ``memagent sweep`` / ``tune`` trial go through
:func:`run_experiment`; it only talks to the :class:`memagent.agent.Agent` interface. What a
run writes is listed in :mod:`memagent.runs`; with ``eval_episodes > 0`` it also writes

``evaluations.csv``
    ``step, success_rate, mean_return, mean_length`` of every greedy evaluation (every
    ``eval_every`` steps and at the end), appended as they happen, so a resumed run keeps them;
``results.json``
    at the end (:data:`RESULTS_FILE`): the final greedy success and return on
    ``eval_episodes`` fresh episodes seeded ``seed + 1000``, the learning curve, training
    steps/s (evaluation time excluded), and whatever ``extra`` the caller adds (a sweep's
    trial id and grid point).

A start that fails (a bad argument the algorithm refuses, an env that cannot be built) leaves
no run folder behind; a run that fails later is marked ``failed`` in state.json, and
``latest`` skips it.
"""

from __future__ import annotations

import csv
import math
import os
import shutil
import signal
import socket
import sys
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from memagent import runs
from memagent.agent import Agent, LearnCallback, get_agent
from memagent.config import TrainConfig, to_dict
from memagent.progress import PhaseProgress

RESULTS_FILE = "results.json"
EVALUATIONS_FILE = "evaluations.csv"
EVAL_FIELDS = ("step", "success_rate", "mean_return", "mean_length")
EVAL_SEED_OFFSET = 1000  # as `memagent eval`: envs never seen in training


def eval_seed(config: TrainConfig) -> int:
    return config.seed + EVAL_SEED_OFFSET


def _say(message: str, file=None) -> None:
    print(f"memagent train: {message}", file=file or sys.stdout, flush=True)


def run_experiment(config: TrainConfig, run_dir: str | Path, *, resume: bool = False,
                   progress: bool = True, on_eval: Callable[[dict], None] | None = None,
                   extra: dict | None = None, say: Callable[[str], None] = _say) -> dict:
    """Train ``config`` in ``run_dir`` (new, or ``resume`` its newest checkpoint).

    :param config: a resolved config (:func:`memagent.config.build_config`).
    :param run_dir: the run folder; a new run needs it absent or empty.
    :param resume: go on from the folder's newest checkpoint up to ``config.total_timesteps``.
    :param progress: draw a progress bar (else one line per phase).
    :param on_eval: called after every greedy evaluation with ``{"step", "success_rate",
        "mean_return", "mean_length", "final"}`` (a sweep reports these to Ray Tune).
    :param extra: more fields for results.json.
    :param say: prints one status line.
    :return: ``{"status": "completed" | "interrupted" | "nothing to do", "steps", ...}``,
        and the results.json fields when the run evaluated.
    :raises ValueError: the agent or env refused the config (no run folder is left).
    """
    import torch

    from memagent.utils import choose_device, resolve_device, set_seed

    run_dir = Path(run_dir)
    torch.set_num_threads(config.threads)
    device, why = choose_device(config.device, config.n_envs)
    if why:
        say(f"device {device}: {why}")
    if config.device.startswith("cuda") and device.type != "cuda":
        say("warning: CUDA was asked for but torch sees no GPU (torch.cuda.is_available() is "
            "False); training on the CPU", sys.stderr)
    set_seed(config.seed)
    cls = get_agent(config.agent)
    fresh = not run_dir.exists() or not any(run_dir.iterdir())
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        if resume:
            agent = cls.load(config, run_dir, device=device, training=True)
        else:
            agent = cls(config, device)
            agent.build(run_dir)
    except BaseException:
        if fresh and not resume:
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    remaining = config.total_timesteps - agent.num_timesteps
    if resume:
        source = getattr(agent, "loaded_from", None)
        say(f"resuming {run_dir}{f' from {source.name}' if source else ''} at step {agent.num_timesteps:,}")
    if resume and remaining <= 0:
        say(f"{run_dir} already has {agent.num_timesteps:,} of {config.total_timesteps:,} steps; "
            "pass --steps N (a larger total) to go on")
        return {"status": "nothing to do", "steps": agent.num_timesteps}
    n_params = agent.n_params()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        resolve_device(str(device), n_params)  # warns for a tiny network on CUDA
    for w in caught:
        say(f"warning: {w.message}", sys.stderr)
    runs.write_json(run_dir / runs.CONFIG_FILE, to_dict(config))
    runs.write_json(run_dir / runs.VERSIONS_FILE, runs.versions(device))
    memory = f" ({config.memory})" if config.memory else ""
    say(f"{config.agent}{memory} on {config.env_id}, {config.total_timesteps:,} steps, "
        f"{config.n_envs} envs, seed {config.seed}, device {device}, {config.threads} thread(s), "
        f"{n_params:,} parameters -> {run_dir}")
    try:
        return _learn(agent, config, run_dir, remaining, resume, progress, on_eval, extra or {},
                      str(device), say)
    except BaseException as err:
        if not isinstance(err, KeyboardInterrupt):
            runs.write_state(run_dir, status="failed", error=f"{type(err).__name__}: {err}"[:500])
        raise


class _RunCallback(LearnCallback):
    """episodes.csv rows, checkpoints at multiples of checkpoint_every, the progress bar, Ctrl-C."""

    def __init__(self, config: TrainConfig, run_dir: Path, log: runs.EpisodeLog, progress: bool,
                 stop: dict, checkpoints: bool):
        self.config, self.run_dir, self.log, self.progress = config, run_dir, log, progress
        self.stop, self.checkpoints = stop, checkpoints
        self.bar = None

    def on_start(self, agent: Agent) -> None:
        self.last_ckpt = agent.num_timesteps
        if self.progress:
            self.bar = _Progress(self.config.total_timesteps, agent.num_timesteps)

    def on_step(self, agent: Agent, infos) -> bool:
        step = agent.num_timesteps
        # a device VecEnv's infos: only the finished envs' dicts can hold an episode
        for info in (infos.built() if hasattr(infos, "built") else infos):
            ep = info.get("episode")
            if ep is not None:
                self.log.add(step, float(ep["r"]), int(ep["l"]), info.get("is_success"))
        every = self.config.checkpoint_every
        if self.checkpoints and every and step // every > self.last_ckpt // every:
            self.log.flush()
            agent.save_checkpoint(self.run_dir, step, self.config.keep_checkpoints)
            runs.write_state(self.run_dir, steps=step, last_success_rate=self.log.success_rate())
            self.last_ckpt = step
        if self.bar is not None:
            self.bar.update(step, self.log.success_rate())
        return not self.stop["sigint"]

    def on_end(self, agent: Agent) -> None:
        if self.bar is not None:
            self.bar.update(agent.num_timesteps, self.log.success_rate(), force=True)
            self.bar.close()


class _EvalCallback(LearnCallback):
    """A greedy evaluation every ``eval_every`` steps (at multiples), appended to evaluations.csv."""

    def __init__(self, config: TrainConfig, run_dir: Path, on_eval):
        self.config, self.path, self.on_eval = config, run_dir / EVALUATIONS_FILE, on_eval
        self.seconds = 0.0

    def on_start(self, agent: Agent) -> None:
        self.last = agent.num_timesteps
        if agent.num_timesteps == 0 and self.config.eval_every:
            self.evaluate(agent)  # the curve starts at step 0

    def on_step(self, agent: Agent, infos) -> bool:
        every = self.config.eval_every
        if every and agent.num_timesteps // every > self.last // every:
            self.evaluate(agent)
        return True

    def evaluate(self, agent: Agent, final: bool = False) -> dict:
        last = getattr(self, "result", None)
        if final and last is not None and last["step"] == agent.num_timesteps:
            if self.on_eval is not None:  # the periodic evaluation of this very step
                self.on_eval({k: last[k] for k in EVAL_FIELDS} | {"final": True})
            return last
        t0 = time.perf_counter()
        episodes = agent.evaluate(self.config.eval_episodes, seed=eval_seed(self.config))
        self.seconds += time.perf_counter() - t0
        self.last = agent.num_timesteps
        row = {"step": agent.num_timesteps, "success_rate": episodes.success_rate(),
               "mean_return": episodes.mean_return(),
               "mean_length": float(sum(episodes.lengths) / max(len(episodes.lengths), 1))}
        new = not self.path.exists()
        with open(self.path, "a", newline="") as fh:
            writer = csv.writer(fh)
            if new:
                writer.writerow(EVAL_FIELDS)
            writer.writerow(["" if row[k] is None else row[k] for k in EVAL_FIELDS])
        if self.on_eval is not None:
            self.on_eval({**row, "final": final})
        self.result = {**row, "episodes": len(episodes.returns), "successes": episodes.successes}
        return self.result


def read_evaluations(run_dir: str | Path) -> list[dict]:
    """The rows of evaluations.csv (numbers; ``success_rate`` None where the env has no success)."""
    path = Path(run_dir) / EVALUATIONS_FILE
    if not path.exists():
        return []
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    return [{"step": int(r["step"]), "success_rate": float(r["success_rate"]) if r["success_rate"] else None,
             "mean_return": float(r["mean_return"]), "mean_length": float(r["mean_length"])} for r in rows]


def _learn(agent: Agent, config, run_dir: Path, remaining: int, resume: bool, progress: bool,
           on_eval, extra: dict, device: str, say) -> dict:
    log = runs.EpisodeLog(run_dir)
    stop = {"sigint": False}
    run_cb = _RunCallback(config, run_dir, log, progress, stop, agent.can_resume)
    eval_cb = _EvalCallback(config, run_dir, on_eval) if config.eval_episodes else None
    agent.log = (lambda msg: None) if progress else say
    agent.verbose = 0 if progress else 1
    phases = PhaseProgress(bar=progress, say=say)
    agent.progress = lambda phase, done, total, **metrics: (
        phases(phase, done, total, **metrics) and not stop["sigint"])

    def on_sigint(signum, frame):
        if stop["sigint"]:  # a second Ctrl-C: give up at once
            raise KeyboardInterrupt
        stop["sigint"] = True
        print("\nmemagent train: Ctrl-C: stopping after this step and saving (Ctrl-C again to abort)",
              file=sys.stderr)

    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, on_sigint) if main_thread else None
    runs.write_state(run_dir, status="running", steps=agent.num_timesteps, device=device,
                     pid=os.getpid(), host=socket.gethostname(), error=None)
    start_steps, t0 = agent.num_timesteps, time.perf_counter()
    try:
        agent.learn(remaining, callbacks=[run_cb] + ([eval_cb] if eval_cb else []), reset=not resume)
    finally:
        phases.close()
        if main_thread:
            signal.signal(signal.SIGINT, previous)
        log.close()
    elapsed = time.perf_counter() - t0
    steps = agent.num_timesteps
    agent.save(run_dir)
    if agent.can_resume:
        agent.save_checkpoint(run_dir, steps, config.keep_checkpoints)
    done = steps >= config.total_timesteps and not stop["sigint"]
    status = "completed" if done else "interrupted"
    train_seconds = max(elapsed - (eval_cb.seconds if eval_cb else 0.0), 1e-9)
    rate = (steps - start_steps) / train_seconds
    sr = log.success_rate()
    out: dict[str, Any] = {"status": status, "steps": steps, "train_seconds": round(train_seconds, 3),
                           "steps_per_second": round(rate, 1)}
    if eval_cb is not None and done:
        final = eval_cb.evaluate(agent, final=True)
        out.update(_results(config, run_dir, final, out, sr, log, extra))
        runs.write_json(run_dir / RESULTS_FILE, out)
    runs.write_state(run_dir, status=status, steps=steps, last_success_rate=sr,
                     last_mean_return=log.mean_return(), pid=None,
                     eval_success_rate=out.get("final", {}).get("success_rate"),
                     episodes=runs.read_state(run_dir).get("episodes", 0) + log.episodes)
    what = f"{steps:,} steps" if not resume else f"{steps - start_steps:,} more steps (step {steps:,} in all)"
    if sr is not None:
        train = f"training success rate (last {len(log.recent_success)} episodes) {sr:.3f}"
    elif log.recent_return:
        train = f"training mean return (last {len(log.recent_return)} episodes) {log.mean_return():.3f}"
    else:
        train = "no training episode finished"
    say(f"{status} {what} in {train_seconds:.1f} s ({rate:,.0f} steps/s); {train}; saved {run_dir}")
    if "final" in out:
        f = out["final"]
        succ = "" if f["success_rate"] is None else f"success {f['success_rate']:.3f}, "
        say(f"greedy evaluation at step {steps:,}: {succ}mean return {f['mean_return']:.3f} "
            f"over {f['episodes']} fresh episodes (env seed {eval_seed(config)}) -> {run_dir / RESULTS_FILE}")
    if stop["sigint"]:
        print(f"memagent train: interrupted; continue with: memagent train --resume {run_dir}",
              file=sys.stderr)
    return out


def _results(config, run_dir, final, out, train_sr, log, extra) -> dict:
    from memagent.evaluation import wilson

    known = [s for s in final["successes"] if s is not None]
    ci = list(wilson(sum(known), len(known))) if known else None
    return {
        "env_id": config.env_id, "agent": config.agent, "memory": config.memory, "seed": config.seed,
        "eval_episodes": config.eval_episodes, "eval_every": config.eval_every,
        "eval_seed": eval_seed(config), "deterministic": True,
        "final": {"step": final["step"], "episodes": final["episodes"],
                  "success_rate": final["success_rate"], "success_ci": ci,
                  "mean_return": final["mean_return"], "mean_length": final["mean_length"]},
        "curve": read_evaluations(run_dir),
        "train_success_rate": train_sr, "train_mean_return": log.mean_return(),
        **extra,
    }


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
                             success="-" if success is None or math.isnan(success) else f"{success:.2f}")

    def close(self) -> None:
        self.progress.stop()
