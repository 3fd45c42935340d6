"""``memagent eval RUN_DIR``: success rate and mean return of a trained agent, with 95% intervals.

The loop passes the policy's state and ``episode_start`` back on every step, so memory agents
(``memory-ppo``, ``man``) are evaluated with their memory; SB3 agents ignore both.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

from memagent.evaluation import run_episodes


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


def wilson(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval of a success rate."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def mean_interval(values, level: float = 0.95) -> tuple[float, float, float]:
    """Mean and Student-t interval (normal when scipy is missing)."""
    x = np.asarray(values, dtype=float)
    mean = float(x.mean())
    if len(x) < 2:
        return mean, mean, mean
    try:
        from scipy.stats import t

        q = float(t.ppf(0.5 + level / 2, len(x) - 1))
    except ImportError:  # pragma: no cover
        q = 1.959964
    half = q * float(x.std(ddof=1)) / math.sqrt(len(x))
    return mean, mean - half, mean + half


def _man_episodes(run_dir, args):
    """The MAN agent's behaviour policy (Q-learning), one gymnasium env, episode by episode."""
    import dataclasses

    from memagent.agents import presets
    from memagent.runs import read_config

    config = read_config(run_dir)
    if args.env is not None:
        config = dataclasses.replace(config, env_id=presets.check_env(args.env))
    seed = config.seed + 1000 if args.seed is None else args.seed
    agent = presets.AGENTS["man"].model_class().load(run_dir / "man", presets.man_env(config, seed),
                                                     device=args.device)
    env, epsilon = agent.env, 0.05 if args.stochastic else 0.0
    returns, lengths, successes = [], [], []
    for episode in range(args.episodes):
        obs, info = env.reset(seed=seed + episode)
        total, length, done = 0.0, 0, False
        while not done:
            obs, reward, terminated, truncated, info = env.step(agent._act(obs, info, epsilon))
            total, length, done = total + float(reward), length + 1, terminated or truncated
        returns.append(total)
        lengths.append(length)
        s = info.get("is_success")
        successes.append(None if s is None else bool(s))
    cov = agent.coverage()
    return config, returns, lengths, successes, (
        f"{int(cov['visited'].sum())}/{agent.n_states} states in the memory")


def evaluate(args: argparse.Namespace) -> int:
    from memagent.runs import check_run_dir, load_run, read_config

    if args.episodes < 1:
        raise ValueError(f"--episodes must be >= 1, got {args.episodes}")
    run_dir = check_run_dir(args.run_dir)
    mode = "stochastic" if args.stochastic else "deterministic"
    if read_config(run_dir).agent == "man":
        config, returns, lengths, successes, note = _man_episodes(run_dir, args)
    else:
        n_envs = args.n_envs or min(args.episodes, 8)
        config, model, venv = load_run(run_dir, env_id=args.env, n_envs=n_envs, seed=args.seed,
                                       device=args.device)
        returns, lengths, successes = run_episodes(model, venv, args.episodes, not args.stochastic)
        venv.close()
        note = f"steps trained {model.num_timesteps:,}"
    print(f"memagent eval: {run_dir}: {config.agent} on {config.env_id}, {len(returns)} episodes, "
          f"{mode} actions, {note}")
    result = {"run_dir": str(run_dir), "env_id": config.env_id, "agent": config.agent,
              "episodes": len(returns), "deterministic": not args.stochastic}
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
