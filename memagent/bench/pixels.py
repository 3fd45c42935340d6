"""``memagent bench pixels``: MemoryPPO's training throughput on pixel observations with
memagent's :class:`memagent.extractors.ScreenCNN` against SB3's ``NatureCNN``, measured in
the same run on the same env, core, n_envs and n_steps (``"CnnPolicy"``, 64 x 64 screens).
A row with ScreenCNN's de-duplication of repeated screens off separates the network from
that trick, and a row on the env's symbolic observations (``"MlpPolicy"``) gives the speed
of everything but the pixels, the ceiling of any CNN."""

from __future__ import annotations

import statistics
import time

from memagent.bench.common import add_common_args, report

AGENTS = ("nature", "screen", "screen-nodedup", "symbolic")
NAMES = {"nature": ("pixels", "SB3 NatureCNN"), "screen": ("pixels", "memagent ScreenCNN"),
         "screen-nodedup": ("pixels", "memagent ScreenCNN, dedup=False"),
         "symbolic": ("symbolic", "one-hot (MlpPolicy)")}


def _make_model(agent: str, env_id: str, *, core: str, n_envs: int, n_steps: int, seed: int,
                device: str):
    from stable_baselines3.common.torch_layers import NatureCNN

    from memagent.agents.memory_ppo import MemoryPPO
    from memagent.envs import make_vec
    from memagent.extractors import ScreenCNN

    if agent == "symbolic":
        return MemoryPPO("MlpPolicy", make_vec(env_id, n_envs, seed=seed), n_steps=n_steps,
                         seed=seed, device=device, policy_kwargs=dict(memory=core))
    extractor = dict(features_extractor_class=NatureCNN if agent == "nature" else ScreenCNN)
    if agent == "screen-nodedup":
        extractor["features_extractor_kwargs"] = {"dedup": False}
    return MemoryPPO("CnnPolicy", make_vec(env_id, n_envs, seed=seed, obs_mode="pixels"),
                     n_steps=n_steps, seed=seed, device=device,
                     policy_kwargs=dict(memory=core, **extractor))


def run_pixels(args) -> int:
    import torch

    from memagent.memory.core import core_names
    from memagent.utils import resolve_device

    if args.core not in core_names():
        raise ValueError(f"--core must be one of {', '.join(core_names())}, got {args.core!r}")
    if args.rollouts < 1 or args.repeats < 1:
        raise ValueError(f"--rollouts and --repeats must be >= 1, got {args.rollouts}, {args.repeats}")
    device = str(resolve_device(args.device))
    torch.set_num_threads(args.threads)
    per_rollout = args.n_envs * args.n_steps
    models = {}
    for name in AGENTS:
        models[name] = _make_model(name, args.env, core=args.core, n_envs=args.n_envs,
                                   n_steps=args.n_steps, seed=args.seed, device=device)
        models[name].learn(per_rollout)  # warm-up: one rollout and one update
    # Interleaved rounds: a burst of load on a shared machine hits both alike, and the
    # median of the rounds ignores a round that one burst spoiled.
    samples: dict[str, list[float]] = {name: [] for name in AGENTS}
    for round_ in range(args.repeats):
        for name in AGENTS:
            start = time.perf_counter()
            models[name].learn(per_rollout * args.rollouts, reset_num_timesteps=False)
            samples[name].append(per_rollout * args.rollouts / (time.perf_counter() - start))
        print(f"  round {round_ + 1}/{args.repeats}: "
              + ", ".join(f"{n} {samples[n][-1]:,.0f} steps/s" for n in AGENTS), flush=True)
    rates = {name: statistics.median(v) for name, v in samples.items()}
    per_round = [s / n for s, n in zip(samples["screen"], samples["nature"], strict=True)]
    rows = []
    for name in AGENTS:
        extractor = models[name].policy.features_extractor
        rows.append([*NAMES[name], extractor.features_dim,
                     sum(p.numel() for p in extractor.parameters()), rates[name],
                     rates[name] / rates["nature"]])
    report("pixels", ["observations", "extractor", "features", "parameters", "train steps/s",
                      "vs NatureCNN"],
           rows, args.json, extra={"env": args.env, "core": args.core, "n_envs": args.n_envs,
                                   "n_steps": args.n_steps, "rollouts": args.rollouts,
                                   "repeats": args.repeats, "device": device,
                                   "samples": samples, "screen_vs_nature_per_round": per_round})
    print(f"ScreenCNN vs NatureCNN per round: {min(per_round):.1f}-{max(per_round):.1f}x")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "pixels", help="MemoryPPO steps/s on pixels: memagent's ScreenCNN vs SB3's NatureCNN",
        description="Training throughput (collection + updates) of MemoryPPO with \"CnnPolicy\" "
        "on a gridworld's 64 x 64 pixel screens, with memagent's ScreenCNN and with SB3's "
        "NatureCNN as the features extractor, same core, env, n_envs and n_steps, and on the "
        "env's symbolic observations (the speed without pixels); ScreenCNN also with dedup=False. "
        "They run in interleaved "
        "rounds; each rate is the median of its rounds.")
    p.add_argument("--env", default="memagent/TMaze-v0", help="a memagent env id")
    p.add_argument("--core", default="gru", help="memory core (default gru)")
    p.add_argument("--n-envs", type=int, default=8)
    p.add_argument("--n-steps", type=int, default=128)
    p.add_argument("--rollouts", type=int, default=2, help="rollouts (+updates) per round")
    p.add_argument("--repeats", type=int, default=3, help="interleaved rounds")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    add_common_args(p)
    p.set_defaults(func=run_pixels)
