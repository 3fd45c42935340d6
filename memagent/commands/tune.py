"""``memagent tune``: Optuna TPE behind Ray Tune, with ASHA or median pruning, on the final greedy
success (or return); writes the best config as a preset for ``memagent train --config``
(:mod:`memagent.tuning`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from memagent.cli import CLIError


def register(subparsers) -> None:
    from memagent.commands.train import add_config_args

    p = subparsers.add_parser(
        "tune", help="hyperparameter search: Optuna TPE on Ray Tune, pruning, best config as a preset",
        description="Search config keys with Optuna's TPE sampler as the Ray Tune searcher; poor "
        "trials are stopped early on their greedy evaluations (every --eval-every steps). Each "
        "trial is a run folder under --out; the best config is written to --preset.")
    add_config_args(p)
    p.add_argument("--search", action="append", default=None, metavar="KEY=SPACE",
                   help="a key and its space: uniform(a, b), loguniform(a, b), int(a, b), logint(a, b), "
                   "choice(v1, v2, ...); e.g. agent_kwargs.learning_rate='loguniform(1e-5, 1e-3)'; repeatable")
    p.add_argument("--trials", type=int, default=20, metavar="N", help="trials to sample (default 20)")
    p.add_argument("--metric", default="success_rate", choices=["success_rate", "mean_return"],
                   help="what to maximise: the greedy evaluation's success rate (default) or mean return")
    p.add_argument("--scheduler", default="asha", choices=["asha", "median", "none"],
                   help="pruning of poor trials (default asha)")
    p.add_argument("--out", default=None, metavar="DIR", help="the tuning folder (default runs/tune-{time})")
    p.add_argument("--preset", default=None, metavar="FILE.yml",
                   help="where the best config goes (default DIR/best.yml)")
    p.add_argument("--address", default=None, metavar="HOST:PORT", help="join a running Ray cluster")
    p.add_argument("--parallel", type=int, default=None, metavar="N", help="trials at a time")
    p.add_argument("--cpus-per-trial", type=float, default=1, metavar="C", help="CPUs per trial (default 1)")
    p.set_defaults(func=tune)


def tune(args: argparse.Namespace) -> int:
    import math
    import time

    from memagent.commands.train import config_values
    from memagent.tuning import parse_space, tune_main

    if args.trials < 1:
        raise CLIError(f"--trials must be >= 1, got {args.trials}")
    if args.cpus_per_trial <= 0:
        raise CLIError(f"--cpus-per-trial must be > 0, got {args.cpus_per_trial}")
    space = parse_space(args.search)
    base = config_values(args)
    user_keys = set(base)
    base.setdefault("threads", max(1, math.ceil(args.cpus_per_trial)))
    base.setdefault("eval_episodes", 100)
    if "eval_every" not in base:
        from memagent.config import build_config

        base["eval_every"] = max(1, build_config(base, "tune").total_timesteps // 10)
    out = Path(args.out) if args.out else Path("runs") / time.strftime("tune-%Y%m%d-%H%M%S")
    preset = Path(args.preset) if args.preset else out / "best.yml"
    return tune_main(out, base, user_keys, space, trials=args.trials, metric=args.metric,
                     scheduler=args.scheduler, address=args.address, parallel=args.parallel,
                     cpus_per_trial=args.cpus_per_trial, seed=base.get("seed", 0), preset=preset,
                     say=lambda msg: print(f"memagent tune: {msg}", flush=True))
