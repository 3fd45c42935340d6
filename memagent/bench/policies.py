"""``memagent bench policies`` (training throughput) and ``memagent bench delay`` (T-maze
delay scaling): MemoryPPO with every memory core against SB3 PPO and sb3-contrib
RecurrentPPO, measured in the same run on the same env, net size, n_envs and n_steps."""

from __future__ import annotations

import time

from memagent.bench.common import add_common_args, report

LENGTH_IDS = {10: "memagent/TMaze-v0", 25: "memagent/TMaze-L25-v0",
              100: "memagent/TMaze-L100-v0", 1000: "memagent/TMaze-L1000-v0"}


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _check_cores(cores: list[str], extra: tuple[str, ...] = ()) -> None:
    from memagent.memory.core import core_names

    known = tuple(core_names()) + extra
    bad = [c for c in cores if c not in known]
    if bad:
        raise ValueError(f"--cores: unknown {', '.join(bad)}; choose from {', '.join(known)}")


def _make_model(agent: str, env, *, n_steps: int, seed: int, device: str, hidden: int = 64):
    """``agent``: ``"ppo"``, ``"recurrent-ppo"``, ``"none"`` or a core name (MemoryPPO)."""
    if agent == "ppo":
        from stable_baselines3 import PPO

        return PPO("MlpPolicy", env, n_steps=n_steps, batch_size=min(64, n_steps * env.num_envs),
                   seed=seed, device=device)
    if agent == "recurrent-ppo":
        from sb3_contrib import RecurrentPPO

        from memagent.policies import CategoricalFlattenExtractor

        return RecurrentPPO("MlpLstmPolicy", env, n_steps=n_steps, seed=seed, device=device,
                            batch_size=min(128, n_steps * env.num_envs),
                            policy_kwargs=dict(lstm_hidden_size=hidden,
                                               features_extractor_class=CategoricalFlattenExtractor))
    from memagent.agents.memory_ppo import MemoryPPO
    from memagent.memory.core import get_core

    memory = None if agent == "none" else agent
    width = None if memory is None else get_core(memory).width
    kwargs = {} if width is None else {width: hidden}  # every core sized alike
    return MemoryPPO("MlpPolicy", env, n_steps=n_steps, seed=seed, device=device,
                     policy_kwargs=dict(memory=memory, memory_kwargs=kwargs))


def _available(core: str) -> bool:
    if core != "nmn":
        return True
    try:
        from memagent.memory.nmn import NMNLayer  # noqa: F401
    except ImportError:
        return False
    return True


def run_policies(args) -> int:
    import statistics

    import torch

    from memagent.envs import make_vec
    from memagent.memory.core import core_names
    from memagent.utils import resolve_device

    cores = _csv(args.cores) if args.cores else core_names()
    _check_cores(cores)
    envs = _csv(args.env)
    if args.rollouts < 1:
        raise ValueError(f"--rollouts must be >= 1, got {args.rollouts}")
    if args.repeats < 1:
        raise ValueError(f"--repeats must be >= 1, got {args.repeats}")
    device = str(resolve_device(args.device))
    torch.set_num_threads(args.threads)
    agents = ["ppo", "recurrent-ppo"] + [c for c in cores if _available(c)]
    skipped = [c for c in cores if not _available(c)]
    per_rollout = args.n_envs * args.n_steps
    names = {"ppo": ("SB3 PPO", "none (MLP)"), "recurrent-ppo": ("sb3-contrib RecurrentPPO", "lstm")}
    rows, rates = [], {}
    for env_id in envs:
        models = {}
        for agent in agents:
            models[agent] = _make_model(agent, make_vec(env_id, args.n_envs, seed=args.seed),
                                        n_steps=args.n_steps, seed=args.seed, device=device)
            models[agent].learn(per_rollout)  # warm-up: one rollout and one update
        # Interleaved rounds: on a shared machine, a burst of load hits every agent alike,
        # and the median of the rounds ignores a round that one burst spoiled.
        samples: dict[str, list[float]] = {a: [] for a in agents}
        for round_ in range(args.repeats):
            for agent in agents:
                start = time.perf_counter()
                models[agent].learn(per_rollout * args.rollouts, reset_num_timesteps=False)
                samples[agent].append(per_rollout * args.rollouts / (time.perf_counter() - start))
            print(f"  {env_id} round {round_ + 1}/{args.repeats}: "
                  + ", ".join(f"{a} {samples[a][-1]:,.0f}" for a in agents), flush=True)
        env_rates = {a: statistics.median(v) for a, v in samples.items()}
        # every agent has trained the same steps by the end of a round, so a round's ratios
        # compare them at the same point of training (RecurrentPPO's rate drifts as its
        # episodes change length while it learns)
        per_round = {a: [r / p for r, p in zip(v, samples["recurrent-ppo"], strict=True)]
                     for a, v in samples.items()}
        rates[env_id] = {"median": env_rates, "samples": samples,
                         "vs_recurrent_ppo_per_round": per_round}
        print(f"  {env_id} vs RecurrentPPO per round: " + ", ".join(
            f"{a} {min(v):.1f}-{max(v):.1f}x" for a, v in per_round.items()
            if a not in ("recurrent-ppo",)), flush=True)
        for agent in agents:
            algo, memory = names.get(agent, ("memagent MemoryPPO", agent))
            rows.append([env_id.removeprefix("memagent/"), algo, memory,
                         _make_batch(agent, args.n_steps, args.n_envs),
                         env_rates[agent], env_rates[agent] / env_rates["ppo"],
                         env_rates[agent] / env_rates["recurrent-ppo"]])
    report("policies", ["env", "agent", "memory", "batch", "train steps/s", "vs PPO", "vs RecurrentPPO"],
           rows, args.json, extra={"envs": envs, "n_envs": args.n_envs, "n_steps": args.n_steps,
                                   "rollouts": args.rollouts, "repeats": args.repeats,
                                   "device": device, "skipped": skipped, "rates": rates})
    if skipped:
        print(f"skipped (not available in this install): {', '.join(skipped)}")
    return 0


def _make_batch(agent: str, n_steps: int, n_envs: int) -> str:
    """The minibatch each agent trains with in :func:`_make_model` (its library's default)."""
    if agent == "ppo":
        return f"{min(64, n_steps * n_envs)} steps"
    if agent == "recurrent-ppo":
        return f"{min(128, n_steps * n_envs)} steps"
    import inspect

    from memagent.agents.memory_ppo import MemoryPPO

    batch = inspect.signature(MemoryPPO.__init__).parameters["batch_size"].default
    batch = n_steps if batch is None else batch  # None: one sequence per minibatch
    return f"{max(1, min(n_envs, batch // n_steps))} envs x {n_steps} steps"


def _success(model, env_id: str, episodes: int, seed: int) -> float:
    from memagent.envs import make_vec
    from memagent.evaluation import success_rate

    return success_rate(model, make_vec(env_id, 8, seed=seed), episodes)


def run_delay(args) -> int:
    import torch

    from memagent.envs import make_vec

    lengths = [int(v) for v in _csv(args.lengths)]
    bad = [v for v in lengths if v not in LENGTH_IDS]
    if bad:
        raise ValueError(f"--lengths: no registered T-maze of length {bad}; choose from "
                         f"{', '.join(map(str, LENGTH_IDS))}")
    agents = _csv(args.cores)
    _check_cores(agents, ("recurrent-ppo", "none"))
    args.transfer = args.transfer or args.transfer_only
    if args.budget < 1:
        raise ValueError(f"--budget must be >= 1 step, got {args.budget}")
    torch.set_num_threads(args.threads)
    rows, transfer_rows, results = [], [], {}
    for agent in [a for a in agents if _available(a)]:
        row = [agent]
        for i, length in enumerate(lengths):
            env_id = LENGTH_IDS[length]
            start = time.perf_counter()
            model = _make_model(agent, make_vec(env_id, args.n_envs, seed=args.seed),
                                n_steps=args.n_steps, seed=args.seed, device="cpu")
            model.learn(args.budget)
            rate = _success(model, env_id, args.episodes, args.seed + 1000)
            results[f"{agent}/{length}"] = {"success": rate, "seconds": time.perf_counter() - start}
            print(f"  {agent} length {length}: success {rate:.2f} "
                  f"({time.perf_counter() - start:.0f} s)", flush=True)
            row.append(rate)
            if i == 0 and args.transfer:  # the policy trained on the first length, on every length
                transfer = [agent]
                for other in lengths:
                    transfer.append(rate if other == length else _success(
                        model, LENGTH_IDS[other], args.episodes, args.seed + 1000))
                    print(f"  {agent} trained on {length}, evaluated on {other}: {transfer[-1]:.2f}",
                          flush=True)
                transfer_rows.append(transfer)
                results[f"{agent}/transfer"] = dict(zip(map(str, lengths), transfer[1:], strict=True))
            if args.transfer_only:
                break
        rows.append(row + [float("nan")] * (len(lengths) + 1 - len(row)))
    headers = ["memory", *[f"L={v}" for v in lengths]]
    extra = {"budget": args.budget, "n_envs": args.n_envs, "n_steps": args.n_steps,
             "episodes": args.episodes, "results": results}
    if not args.transfer_only:
        report("delay", headers, rows, args.json, extra=extra)
    if transfer_rows:
        print(f"\ntrained on L={lengths[0]} ({args.budget} steps), evaluated on each length:")
        report("delay-transfer", headers, transfer_rows,
               args.json if args.transfer_only else None, extra=extra)
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "policies", help="MemoryPPO training steps/s per core vs SB3 PPO and RecurrentPPO",
        description="Training throughput (collection + updates) of MemoryPPO with every memory "
        "core, SB3 PPO (MlpPolicy) and sb3-contrib RecurrentPPO (MlpLstmPolicy), on the same env, "
        "net size (64-64 MLP, 64-unit memory), n_envs and n_steps, each with its library's "
        "default minibatch and n_epochs=10. Agents run in interleaved rounds; each rate is the "
        "median of its rounds.")
    p.add_argument("--env", default="memagent/TMaze-v0,memagent/TMaze-L100-v0",
                   help="memagent env ids, comma-separated; the default pairs short episodes "
                   "(~12 steps) with long ones (~110 steps, longer than a minibatch sequence)")
    p.add_argument("--cores", default=None,
                   help="memory cores to measure, comma-separated (default: every registered core)")
    p.add_argument("--n-envs", type=int, default=8)
    p.add_argument("--n-steps", type=int, default=128)
    p.add_argument("--rollouts", type=int, default=3, help="rollouts (+updates) per agent per round")
    p.add_argument("--repeats", type=int, default=5,
                   help="interleaved rounds per env; each agent's rate is the median of its rounds")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    add_common_args(p)
    p.set_defaults(func=run_policies)

    d = subparsers.add_parser(
        "delay", help="T-maze success after a fixed budget, per corridor length and memory",
        description="Delay scaling: deterministic success rate on the T-maze of each length "
        "after --budget training steps, for each memory core and RecurrentPPO.")
    d.add_argument("--lengths", default="10,25,100,1000", help="corridor lengths (10,25,100,1000)")
    d.add_argument("--cores", default="hopfield,gru,lstm,nmn,recurrent-ppo",
                   help="memory cores, 'recurrent-ppo' and/or 'none'")
    d.add_argument("--budget", type=int, default=200_000, help="training steps per run")
    d.add_argument("--episodes", type=int, default=100, help="evaluation episodes")
    d.add_argument("--n-envs", type=int, default=8)
    d.add_argument("--n-steps", type=int, default=128)
    d.add_argument("--threads", type=int, default=1, help="torch threads")
    d.add_argument("--transfer", action="store_true",
                   help="also evaluate the policy trained on the first length on every length")
    d.add_argument("--transfer-only", action="store_true",
                   help="train on the first length only and evaluate it on every length")
    add_common_args(d)
    d.set_defaults(func=run_delay)
