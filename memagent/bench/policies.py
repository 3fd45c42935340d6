"""``memagent bench policies`` (training throughput) and ``memagent bench delay`` (T-maze
delay scaling): MemoryPPO with every memory core against SB3 PPO and sb3-contrib
RecurrentPPO, measured in the same run on the same env, net size, n_envs and n_steps."""

from __future__ import annotations

import time

from memagent.bench.common import add_common_args, report

CORES = ("lstm", "gru", "nmn", "hopfield")
LENGTH_IDS = {10: "memagent/TMaze-v0", 25: "memagent/TMaze-L25-v0",
              100: "memagent/TMaze-L100-v0", 1000: "memagent/TMaze-L1000-v0"}


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _check_cores(cores: list[str], extra: tuple[str, ...] = ()) -> None:
    bad = [c for c in cores if c not in CORES + extra]
    if bad:
        raise ValueError(f"--cores: unknown {', '.join(bad)}; choose from {', '.join(CORES + extra)}")


def _make_model(agent: str, env, *, n_steps: int, seed: int, device: str, hidden: int = 64):
    """``agent``: ``"ppo"``, ``"recurrent-ppo"``, ``"none"`` or a core name (MemoryPPO)."""
    if agent == "ppo":
        from stable_baselines3 import PPO

        return PPO("MlpPolicy", env, n_steps=n_steps, batch_size=min(64, n_steps * env.num_envs),
                   seed=seed, device=device)
    if agent == "recurrent-ppo":
        from sb3_contrib import RecurrentPPO

        return RecurrentPPO("MlpLstmPolicy", env, n_steps=n_steps, seed=seed, device=device,
                            batch_size=min(128, n_steps * env.num_envs),
                            policy_kwargs=dict(lstm_hidden_size=hidden))
    from memagent.agents.memory_ppo import MemoryPPO

    memory = None if agent == "none" else agent
    kwargs = {} if memory is None else {"output_dim" if memory == "hopfield" else "hidden_size": hidden}
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
    import torch

    from memagent.envs import make_vec
    from memagent.utils import resolve_device

    cores = _csv(args.cores)
    _check_cores(cores)
    if args.rollouts < 1:
        raise ValueError(f"--rollouts must be >= 1, got {args.rollouts}")
    device = str(resolve_device(args.device))
    torch.set_num_threads(args.threads)
    agents = ["ppo", "recurrent-ppo"] + [c for c in cores if _available(c)]
    skipped = [c for c in cores if not _available(c)]
    per_rollout = args.n_envs * args.n_steps
    rates = {}
    for agent in agents:
        env = make_vec(args.env, args.n_envs, seed=args.seed)
        model = _make_model(agent, env, n_steps=args.n_steps, seed=args.seed, device=device)
        model.learn(per_rollout)  # warm-up: one rollout and one update
        start = time.perf_counter()
        model.learn(per_rollout * args.rollouts, reset_num_timesteps=False)
        rates[agent] = per_rollout * args.rollouts / (time.perf_counter() - start)
        print(f"  {agent}: {rates[agent]:,.0f} steps/s", flush=True)
    names = {"ppo": ("SB3 PPO", "none (MLP)"), "recurrent-ppo": ("sb3-contrib RecurrentPPO", "lstm")}
    rows = []
    for agent in agents:
        algo, memory = names.get(agent, ("memagent MemoryPPO", agent))
        batch = _make_batch(agent)
        rows.append([algo, memory, batch, rates[agent], rates[agent] / rates["ppo"],
                     rates[agent] / rates["recurrent-ppo"]])
    report("policies", ["agent", "memory", "batch", "train steps/s", "vs PPO", "vs RecurrentPPO"],
           rows, args.json, extra={"env": args.env, "n_envs": args.n_envs, "n_steps": args.n_steps,
                                   "rollouts": args.rollouts, "device": device, "skipped": skipped})
    if skipped:
        print(f"skipped (not available in this install): {', '.join(skipped)}")
    return 0


def _make_batch(agent: str) -> str:
    """The minibatch each agent trains with (its library's default)."""
    return {"ppo": "64 steps", "recurrent-ppo": "128 steps"}.get(agent, "4 envs x 128 steps")


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
        "default minibatch and n_epochs=10.")
    p.add_argument("--env", default="memagent/TMaze-v0", help="a memagent env id")
    p.add_argument("--cores", default=",".join(CORES), help="memory cores to measure")
    p.add_argument("--n-envs", type=int, default=8)
    p.add_argument("--n-steps", type=int, default=128)
    p.add_argument("--rollouts", type=int, default=4, help="rollouts (+updates) timed per agent")
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
