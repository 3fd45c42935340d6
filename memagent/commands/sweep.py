"""``memagent sweep``: seeds x configs x envs as Ray Tune trials (see :mod:`memagent.sweep`).

Every config flag of ``memagent train`` sets what all trials share; ``--grid KEY=V1,V2``
(repeatable) makes the configs, ``--env`` takes several envs (comma-separated) and
``--seeds`` a range. Each trial is a run folder under ``--out`` with ``results.json``
(final greedy success and return on ``--eval-episodes`` fresh episodes, the learning curve
every ``--eval-every`` steps, training steps/s). Running the same command again, or
``--resume DIR``, skips finished trials.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from memagent.cli import CLIError


def register(subparsers) -> None:
    from memagent.commands.train import add_config_args

    p = subparsers.add_parser(
        "sweep", help="seeds x configs x envs as Ray Tune trials, one run folder each",
        description="Run a grid of configs over seeds and envs on a local Ray (default) or a Ray "
        "cluster (--address); each trial writes a run folder with results.json. Summarise with "
        "memagent report DIR.")
    add_config_args(p, seed=False)
    p.add_argument("--grid", action="append", default=None, metavar="KEY=V1,V2",
                   help="a config key and its values (dotted into dicts: agent_kwargs.learning_rate="
                   "1e-3,3e-4; YAML lists: net_arch=[[64],[64,64]]); repeatable, the product is swept")
    p.add_argument("--seeds", default="0-2", metavar="RANGE", help="seeds: 0-9 or 0,3,7 (default 0-2)")
    p.add_argument("--out", default=None, metavar="DIR", help="the sweep folder (default runs/sweep-{time})")
    p.add_argument("--resume", default=None, metavar="DIR",
                   help="go on with the sweep in DIR (its sweep.json): finished trials are skipped")
    p.add_argument("--address", default=None, metavar="HOST:PORT",
                   help="join a running Ray cluster (ray start --head); default: a local Ray on this machine")
    p.add_argument("--parallel", type=int, default=None, metavar="N",
                   help="trials at a time (default: the cluster's CPUs // --cpus-per-trial)")
    p.add_argument("--cpus-per-trial", type=float, default=1, metavar="C",
                   help="CPUs Ray reserves per trial (default 1); trials train with that many torch threads")
    p.add_argument("--dry-run", action="store_true", help="list the trials and exit")
    p.set_defaults(func=sweep)


def _spec_from_args(args) -> tuple[dict, list]:
    from memagent.commands.train import config_values
    from memagent.sweep import parse_grid, parse_seeds, plan

    if args.cpus_per_trial <= 0:
        raise CLIError(f"--cpus-per-trial must be > 0, got {args.cpus_per_trial}")
    if args.parallel is not None and args.parallel < 1:
        raise CLIError(f"--parallel must be >= 1, got {args.parallel}")
    envs = [e.strip() for e in (args.env or "memagent/TMaze-v0").split(",") if e.strip()]
    args.env = None
    base = config_values(args)
    base.setdefault("threads", max(1, math.ceil(args.cpus_per_trial)))
    base.setdefault("eval_episodes", 100)
    grid = parse_grid(args.grid)
    seeds = parse_seeds(args.seeds)
    if "eval_every" not in base:  # a learning curve of ~10 points over the run
        probe = plan(base, {k: v[:1] for k, v in grid.items()}, envs[:1], seeds[:1])[0]
        base["eval_every"] = max(1, probe.config["total_timesteps"] // 10)
    spec = {"base": base, "grid": grid, "envs": envs, "seeds": seeds}
    return spec, plan(base, grid, envs, seeds)


def sweep(args: argparse.Namespace) -> int:
    import time

    from memagent.sweep import Trial, read_spec, sweep_main

    if args.resume:
        out = Path(args.resume)
        spec = {k: v for k, v in read_spec(out).items() if k != "trials"}
        trials = [Trial(**t) for t in read_spec(out)["trials"]]
    else:
        spec, trials = _spec_from_args(args)
        out = Path(args.out) if args.out else Path("runs") / time.strftime("sweep-%Y%m%d-%H%M%S")
    if args.dry_run:
        for t in trials:
            print(f"{t.trial_id}  {t.params or ''}")
        print(f"memagent sweep: {len(trials)} trials -> {out}")
        return 0
    return sweep_main(out, spec, trials, address=args.address, parallel=args.parallel,
                      cpus_per_trial=args.cpus_per_trial,
                      say=lambda msg: print(f"memagent sweep: {msg}", flush=True))
