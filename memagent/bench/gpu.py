"""``memagent bench gpu``: the engine and MemoryPPO on torch devices, against the numpy path.

Two tables, measured in one run:

- **engine**: steps/s of the batched engine alone (step, observe, reset the finished worlds;
  random actions already on the engine's device) at each of ``--sizes`` worlds: numpy on
  the host (the peer), torch on the CPU, and torch on CUDA when there is one; the ratio
  ``torch / numpy`` per size;
- **train**: end-to-end training steps/s (collection + updates) of MemoryPPO with each of
  ``--cores`` at each of ``--ppo-sizes`` envs, through the numpy VecEnv (the peer, today's
  path) and through the device VecEnv (``make_vec(..., device=...)``), on the CPU and on
  CUDA when there is one, and SB3 PPO (MlpPolicy, numpy VecEnv) on the same device; the
  paths run in interleaved rounds and each rate is the median of its rounds.

Every agent trains with the same large-batch settings (``--n-steps``, four minibatches of
whole env sequences per epoch, ``--n-epochs``), so a rate compares paths, not settings.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from memagent.bench.common import add_common_args, machine, rate, report

DEFAULT_SIZES = (256, 1024, 4096)
ENGINE_HEADERS = ["worlds", "backend", "steps/s", "vs numpy"]


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "gpu", help="engine and MemoryPPO steps/s on torch devices vs the numpy path",
        description=__doc__.split("\n\n", 1)[1])
    p.add_argument("--env", default="memagent/TMaze-L100-v0", help="a memagent gridworld id")
    p.add_argument("--obs-mode", default="symbolic", choices=["symbolic", "pixels"])
    p.add_argument("--sizes", nargs="+", type=int, default=list(DEFAULT_SIZES), metavar="N",
                   help="numbers of worlds for the engine table")
    p.add_argument("--cores", default="gru,hopfield",
                   help="memory cores for the training table, comma-separated ('' skips it)")
    p.add_argument("--ppo-sizes", nargs="+", type=int, default=[256], metavar="N",
                   help="numbers of envs for the training table")
    p.add_argument("--n-steps", type=int, default=32, help="steps per env per rollout")
    p.add_argument("--n-epochs", type=int, default=2, help="PPO epochs per rollout")
    p.add_argument("--rollouts", type=int, default=1, help="rollouts (+updates) per path per round")
    p.add_argument("--repeats", type=int, default=3, help="interleaved rounds; rates are medians")
    p.add_argument("--min-time", type=float, default=2.0,
                   help="seconds each engine measurement runs for at least (in 5 interleaved rounds)")
    p.add_argument("--devices", default="auto",
                   help="torch devices to measure, comma-separated; auto: cpu, and cuda when present")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    add_common_args(p)
    p.set_defaults(func=run)


def _devices(text: str) -> list[str]:
    import torch

    if text == "auto":
        return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    devices = [d.strip() for d in text.split(",") if d.strip()]
    for d in devices:
        if d.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"--devices: {d} asked for but torch sees no CUDA device; "
                             "use --devices cpu (or auto)")
    return devices


def _sync(device) -> None:
    import torch

    if device is not None and str(device).startswith("cuda"):
        torch.cuda.synchronize()


def engine_rates(env_id: str, obs_mode: str, n: int, devices: list, seed: int,
                 min_time: float, rounds: int = 5) -> dict:
    """Steps/s of the engine of ``n`` worlds on each of ``devices`` (``None``: numpy), each
    the median of ``rounds`` interleaved rounds of ``min_time / rounds`` seconds: a burst
    of load on a shared machine then hits every backend alike."""
    from memagent.envs import make_engine

    runs = {}
    for device in devices:
        eng = make_engine(env_id, n, seed=seed, obs_mode=obs_mode, device=device)
        rng = np.random.default_rng(seed)
        pool = [eng.xp.asarray(rng.integers(0, eng.n_actions, n)) for _ in range(16)]

        def run(eng=eng, pool=pool, device=device, state={"i": 0}) -> int:  # noqa: B006
            for _ in range(4):
                _, terminated, _ = eng.step(pool[state["i"] % len(pool)])
                state["i"] += 1
                eng.observe()
                done = eng.xp.nonzero(terminated | (eng.t >= eng.max_steps))
                if len(done):
                    eng.reset(done)
                    eng.observe(done)
            _sync(device)
            return 4 * n

        run()   # warm-up
        runs[device] = run
    samples = {d: [] for d in devices}
    for _ in range(rounds):
        for device, run in runs.items():
            samples[device].append(rate(run, min_time / rounds, warmup=0))
    return {d: statistics.median(v) for d, v in samples.items()}


def _model(agent: str, env_id: str, n_envs: int, env_device, device: str, args):
    from memagent.envs import make_vec

    venv = make_vec(env_id, n_envs, seed=args.seed, device=env_device, obs_mode=args.obs_mode)
    batch = max(args.n_steps, n_envs * args.n_steps // 4)
    policy = "CnnPolicy" if args.obs_mode == "pixels" else "MlpPolicy"
    if agent == "ppo":
        from stable_baselines3 import PPO

        return PPO(policy, venv, n_steps=args.n_steps, batch_size=batch, n_epochs=args.n_epochs,
                   seed=args.seed, device=device)
    from memagent.agents.memory_ppo import MemoryPPO

    return MemoryPPO(policy, venv, n_steps=args.n_steps, batch_size=batch, n_epochs=args.n_epochs,
                     seed=args.seed, device=device, policy_kwargs=dict(memory=agent))


def train_rates(env_id: str, cores: list[str], n_envs: int, device: str, args) -> dict[str, list[float]]:
    """Training steps/s of MemoryPPO with each core through the numpy and the device VecEnv,
    and of SB3 PPO, in interleaved rounds: ``{"gru/numpy env": [rate per round], ...}``."""
    paths = {"SB3 PPO": ("ppo", None)}
    for core in cores:
        paths.update({f"{core}/numpy env": (core, None), f"{core}/device env": (core, device)})
    per_rollout = n_envs * args.n_steps
    models = {}
    for name, (agent, env_device) in paths.items():
        models[name] = _model(agent, env_id, n_envs, env_device, device, args)
        models[name].learn(per_rollout)      # warm-up: one rollout and one update
    samples: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(args.repeats):
        for name, model in models.items():
            start = time.perf_counter()
            model.learn(per_rollout * args.rollouts, reset_num_timesteps=False)
            _sync(device)
            samples[name].append(per_rollout * args.rollouts / (time.perf_counter() - start))
    return samples


def run(args) -> int:
    import torch

    from memagent.commands.envs import full_id

    env_id = full_id(args.env)
    sizes, ppo_sizes = sorted(set(args.sizes)), sorted(set(args.ppo_sizes))
    if not sizes or sizes[0] < 1 or not ppo_sizes or ppo_sizes[0] < 1:
        raise ValueError(f"--sizes and --ppo-sizes must be positive integers, got {args.sizes} "
                         f"and {args.ppo_sizes}")
    for name in ("n_steps", "n_epochs", "rollouts", "repeats", "threads"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    devices = _devices(args.devices)
    cores = [c.strip() for c in args.cores.split(",") if c.strip()]
    if cores:
        from memagent.bench.policies import _check_cores

        _check_cores(cores)
    torch.set_num_threads(args.threads)
    print(f"devices: {', '.join(devices)}"
          + ("" if "cuda" in ",".join(devices) else " (no CUDA device: GPU rows not measured)"),
          file=sys.stderr, flush=True)

    engine_rows, engine = [], {}
    for n in sizes:
        rates = engine_rates(env_id, args.obs_mode, n, [None, *devices], args.seed, args.min_time)
        base = rates[None]
        engine[f"numpy@{n}"] = base
        engine_rows.append([n, "numpy", base, 1.0])
        for dev in devices:
            engine[f"torch-{dev}@{n}"] = rates[dev]
            engine_rows.append([n, f"torch {dev}", rates[dev], rates[dev] / base])
        print(f"  engine {n} worlds measured", file=sys.stderr, flush=True)
    name = env_id.removeprefix("memagent/")
    print(f"engine: {name} ({args.obs_mode}), steps/s; vs numpy = torch / numpy in this run")
    report("gpu-engine", ENGINE_HEADERS, engine_rows)

    train_rows, train = [], {}
    train_headers = ["memory", "device", "envs", "env path", "train steps/s", "vs numpy env",
                     "vs SB3 PPO"]
    for dev in devices if cores else ():
        for n in ppo_sizes:
            samples = train_rates(env_id, cores, n, dev, args)
            med = {k: statistics.median(v) for k, v in samples.items()}
            train[f"{dev}/{n}"] = {"median": med, "samples": samples}
            ppo = med["SB3 PPO"]
            train_rows.append(["none (SB3 PPO)", dev, n, "numpy env", ppo, float("nan"), 1.0])
            for core in cores:
                base = med[f"{core}/numpy env"]
                for path in ("numpy env", "device env"):
                    r = med[f"{core}/{path}"]
                    train_rows.append([core, dev, n, path, r, r / base, r / ppo])
            print(f"  train {dev} {n} envs measured", file=sys.stderr, flush=True)
    if train_rows:
        print(f"\ntrain: MemoryPPO on {name}, end-to-end steps/s (median of {args.repeats} rounds); "
              f"n_steps {args.n_steps}, 4 minibatches of env sequences, {args.n_epochs} epochs")
        report("gpu-train", train_headers, train_rows)
    if args.json:
        payload = {"bench": "gpu", "machine": machine(), "env": env_id, "obs_mode": args.obs_mode,
                   "devices": devices, "cuda_measured": any(d.startswith("cuda") for d in devices),
                   "engine_headers": ENGINE_HEADERS, "engine_rows": engine_rows,
                   "train_headers": train_headers, "train_rows": train_rows,
                   "engine": engine, "train": train, "n_steps": args.n_steps,
                   "n_epochs": args.n_epochs, "rollouts": args.rollouts, "repeats": args.repeats,
                   "threads": args.threads}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(payload, indent=2, default=float))
    return 0
