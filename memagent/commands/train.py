"""``memagent train``: train an agent into a run folder (see :mod:`memagent.runs`).

The config is merged from the agent's presets (``memagent/hyperparams/{agent}.yml``), a
``--config`` file, ``--set`` pairs and the flags (:mod:`memagent.config`); the run itself is
:func:`memagent.experiment.run_experiment`. ``memagent train`` alone trains the hopfield
``memory-ppo`` agent on ``memagent/TMaze-v0``. Ctrl-C stops at the next step, saves model.zip
and a checkpoint, and exits with status 130; ``--resume RUN_DIR`` continues.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
from pathlib import Path

from memagent.cli import CLIError

_RESUME_FIXED = ("env", "agent", "memory", "n_envs", "seed", "config", "run_dir", "curriculum",
                 "set", "eval_every", "eval_episodes")
#: flag -> config key
FLAGS = (("env", "env_id"), ("agent", "agent"), ("memory", "memory"), ("steps", "total_timesteps"),
         ("n_envs", "n_envs"), ("seed", "seed"), ("device", "device"), ("threads", "threads"),
         ("eval_every", "eval_every"), ("eval_episodes", "eval_episodes"))


def add_config_args(p: argparse.ArgumentParser, seed: bool = True) -> None:
    """The flags that make a config (shared by train, sweep and tune)."""
    p.add_argument("--env", default=None, metavar="ENV_ID", help="gymnasium id (default memagent/TMaze-v0)")
    p.add_argument("--agent", default=None, metavar="AGENT",
                   help="memory-ppo (default), ppo, dqn, man, or any stable-baselines3 / sb3-contrib "
                   "algorithm (a2c, qrdqn, ...) or module:Class")
    p.add_argument("--memory", default=None, metavar="CORE",
                   help="memory-ppo: a registered core (`memagent cores` lists them; default hopfield); "
                   "man: typeA or typeB")
    p.add_argument("--steps", type=int, default=None, metavar="N", help="total env steps (default: the preset's)")
    p.add_argument("--n-envs", type=int, default=None, metavar="N", help="parallel envs (default: the preset's)")
    p.add_argument("--curriculum", default=None, metavar="L:N,...",
                   help="train N steps at length L first, for each stage in order, then on the env "
                   "itself (T-mazes; e.g. 10:40000,100:100000); 'off' drops the preset's")
    if seed:
        p.add_argument("--seed", type=int, default=None, metavar="S", help="one seed for everything (default 0)")
    p.add_argument("--device", default=None, metavar="auto|cpu|cuda",
                   help="default auto: CUDA when present and --n-envs >= 1024 (one line says why), else CPU")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="torch threads of the training process (default 1: small networks train "
                   "fastest on one; more contend on a shared CPU)")
    p.add_argument("--config", default=None, metavar="FILE",
                   help="YAML, TOML or JSON file of config keys (docs/cli.md); --set and flags win over it")
    p.add_argument("--set", action="append", default=None, metavar="KEY=VALUE",
                   help="one config key (dotted into dicts: agent_kwargs.learning_rate=1e-3); repeatable")
    p.add_argument("--eval-every", type=int, default=None, metavar="K",
                   help="greedy evaluation every K steps (the learning curve in results.json; default 0: none)")
    p.add_argument("--eval-episodes", type=int, default=None, metavar="N",
                   help="fresh episodes of each greedy evaluation, and of the final one written to "
                   "results.json (default 0: none)")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train", help="train an agent into a run folder (runs/...)",
        description="Train an agent; writes config.json, model.zip, checkpoints/, TensorBoard "
        "events, episodes.csv and versions.json into a run folder (and results.json with "
        "--eval-episodes). Unset options come from the agent's preset for the env "
        "(memagent/hyperparams/AGENT.yml).",
    )
    add_config_args(p)
    p.add_argument("--run-dir", default=None, metavar="DIR", help="the run folder to create (default runs/{env}__{agent}__{seed}__{time})")
    p.add_argument("--runs-root", default="runs", metavar="DIR", help="parent of new run folders (default runs)")
    p.add_argument("--resume", default=None, metavar="RUN_DIR", help="continue a run from its latest checkpoint (`latest`: the newest run in runs/)")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bars: the summary lines, and a line at every tenth of an agent's "
                   "non-env phases (the man agent's memory training)")
    p.set_defaults(func=train)


def parse_set(pairs: list[str] | None) -> dict:
    """``["agent_kwargs.learning_rate=1e-3"]`` -> ``{"agent_kwargs.learning_rate": 0.001}``."""
    from memagent.config import parse_value, split_key

    out = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep:
            raise CLIError(f"--set takes KEY=VALUE, got {pair!r}")
        split_key(key.strip())
        out[key.strip()] = parse_value(value)
    return out


def config_values(args) -> dict:
    """The user's layers as one mapping: the --config file, then --set, then the flags."""
    from memagent.config import load_config_file

    values = dict(load_config_file(args.config)) if args.config else {}
    values.update(parse_set(getattr(args, "set", None)))
    for flag, key in FLAGS:
        if getattr(args, flag, None) is not None:
            values[key] = getattr(args, flag)
    if getattr(args, "curriculum", None) is not None:
        from memagent.curriculum import parse_curriculum

        off = args.curriculum.strip().lower() in ("off", "none", "")
        values["curriculum"] = [] if off else parse_curriculum(args.curriculum)
    return values


def _check_device(device: str) -> None:
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", device):
        raise CLIError(f"--device must be auto, cpu or cuda[:i], got {device!r}")


def train(args: argparse.Namespace) -> int:
    from memagent import runs
    from memagent.agent import get_agent
    from memagent.config import build_config
    from memagent.experiment import run_experiment

    if args.resume:
        fixed = [f"--{k.replace('_', '-')}" for k in _RESUME_FIXED if getattr(args, k) is not None]
        if fixed:
            raise CLIError(f"--resume keeps the run's config; drop {', '.join(fixed)} (only --steps, "
                           "--device and --threads may change)")
        run_dir = runs.check_run_dir(args.resume, root=args.runs_root)
        config = runs.read_config(run_dir)
        if not get_agent(config.agent).can_resume:
            raise CLIError(f"the {config.agent} agent cannot resume; train a new run")
        changes = {k: v for k, v in (("total_timesteps", args.steps), ("device", args.device),
                                     ("threads", args.threads)) if v is not None}
        config = dataclasses.replace(config, **changes)
        if config.threads < 1:
            raise CLIError(f"--threads must be >= 1, got {config.threads}")
    else:
        config = build_config(config_values(args))
        run_dir = Path(args.run_dir) if args.run_dir else runs.new_run_dir(config, args.runs_root)
        if run_dir.exists() and any(run_dir.iterdir()):
            raise CLIError(f"run folder {str(run_dir)!r} already exists and is not empty; "
                           "pick another --run-dir or continue it with --resume")
    _check_device(config.device)
    out = run_experiment(config, run_dir, resume=bool(args.resume), progress=not args.no_progress)
    return 130 if out["status"] == "interrupted" else 0
