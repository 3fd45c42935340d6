"""``memagent eval RUN_DIR``: success rate and mean return of a trained agent, with 95% intervals.

The agent plays fresh episodes through :meth:`memagent.agent.Agent.evaluate`, which carries
its memory (the policy's state and ``episode_start`` go back on every step).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from memagent.evaluation import mean_interval, wilson  # noqa: F401  (wilson: re-exported)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "eval", help="evaluate a run: success rate and return with 95%% confidence intervals",
        description="Evaluate the newest model of a run folder on fresh episodes.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="a folder written by memagent train, or `latest` (the newest run in runs/)")
    p.add_argument("--episodes", type=int, default=100, metavar="N", help="episodes (default 100)")
    p.add_argument("--env", default=None, metavar="ENV_ID", help="evaluate on another env (same observations)")
    p.add_argument("--stochastic", action="store_true", help="sample actions (default: deterministic)")
    p.add_argument("--seed", type=int, default=None, help="env seed (default: the run's seed + 1000)")
    p.add_argument("--n-envs", type=int, default=None, metavar="N", help="parallel envs (default min(N, 8))")
    p.add_argument("--device", default="cpu", help="device for the model (default cpu)")
    p.add_argument("--json", default=None, metavar="FILE", help="also write the figures as JSON")
    p.set_defaults(func=evaluate)


def evaluate(args: argparse.Namespace) -> int:
    from memagent.agent import load_agent
    from memagent.experiment import eval_seed
    from memagent.runs import check_run_dir

    if args.episodes < 1:
        raise ValueError(f"--episodes must be >= 1, got {args.episodes}")
    run_dir = check_run_dir(args.run_dir)
    mode = "stochastic" if args.stochastic else "deterministic"
    agent = load_agent(run_dir, env_id=args.env, device=args.device)
    config = agent.config
    seed = eval_seed(config) if args.seed is None else args.seed
    returns, lengths, successes = agent.evaluate(args.episodes, seed=seed, deterministic=not args.stochastic,
                                                 n_envs=args.n_envs)
    print(f"memagent eval: {run_dir}: {config.agent} on {config.env_id}, {len(returns)} episodes, "
          f"{mode} actions, {agent.summary()}")
    result = {"run_dir": str(run_dir), "env_id": config.env_id, "agent": config.agent,
              "episodes": len(returns), "deterministic": not args.stochastic, "seed": seed}
    known = [s for s in successes if s is not None]
    if known:
        k = sum(known)
        lo, hi = wilson(k, len(known))
        result.update(success_rate=k / len(known), success_ci=[lo, hi])
        print(f"  success rate  {k / len(known):.3f}   95% CI [{lo:.3f}, {hi:.3f}]  (Wilson, {k}/{len(known)})")
    mean, lo, hi = mean_interval(returns)
    result.update(mean_return=mean, return_ci=[lo, hi], mean_length=float(np.mean(lengths)))
    print(f"  mean return   {mean:.3f}   95% CI [{lo:.3f}, {hi:.3f}]  (t)")
    print(f"  mean length   {np.mean(lengths):.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0
