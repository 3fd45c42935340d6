"""``memagent bench replay``: add and sample throughput of MAN's class queues (§3.1) against
stable-baselines3's ``ReplayBuffer``, measured in the same run.

Rows: ``ClassQueueMemory`` (torch storage), ``ClassBalancedReplayBuffer`` (SB3 subclass) and
SB3's ``ReplayBuffer``, for vector observations and for 64 x 64 x 3 screens. ``add`` files one
step of ``n_envs`` transitions (keys drawn with a 100:1 imbalance); ``sample`` draws a batch
(class-balanced for the first two, uniform for SB3). The ratio column is sampling speed
relative to SB3's ``ReplayBuffer`` (target: >= 1.0 while balancing). Every rate is the best
of ``--repeats`` interleaved measurements.
"""

from __future__ import annotations

from memagent.bench.common import add_common_args, rate, report


def register(subparsers) -> None:
    p = subparsers.add_parser("replay", help="class-balanced replay vs SB3 ReplayBuffer throughput",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("--n-classes", type=int, default=32, help="classes (state ids)")
    p.add_argument("--buffer-size", type=int, default=50_000, help="transitions held in all")
    p.add_argument("--n-envs", type=int, default=8, help="transitions per add")
    p.add_argument("--batch-size", type=int, default=256, help="transitions per sample")
    p.add_argument("--min-time", type=float, default=0.5, help="seconds per measurement")
    p.add_argument("--repeats", type=int, default=3, help="interleaved repeats (best is kept)")
    p.add_argument("--obs", choices=["vector", "screen", "both"], default="both")
    add_common_args(p)
    p.set_defaults(func=run)


def _keys(rng, n_classes: int, n: int):
    """A 100:1 stream: class 0 has weight 100, every other class 1."""
    import numpy as np

    w = np.ones(n_classes)
    w[0] = 100.0
    return rng.choice(n_classes, size=n, p=w / w.sum())


def _measure(obs_kind: str, args) -> list[list]:
    import numpy as np
    import torch as th
    from gymnasium import spaces
    from stable_baselines3.common.buffers import ReplayBuffer

    from memagent.memory.replay import ClassBalancedReplayBuffer, ClassQueueMemory

    rng = np.random.default_rng(args.seed)
    np.random.seed(args.seed)
    if obs_kind == "vector":
        space = spaces.Box(-1, 1, (16,), np.float32)
        make = lambda n: rng.standard_normal((n, 16)).astype(np.float32)  # noqa: E731
        dtype = th.float32
    else:
        space = spaces.Box(0, 255, (64, 64, 3), np.uint8)
        make = lambda n: rng.integers(0, 256, (n, 64, 64, 3), dtype=np.uint8)  # noqa: E731
        dtype = th.uint8
    size = args.buffer_size if obs_kind == "vector" else min(args.buffer_size, 20_000)
    act = spaces.Discrete(3)
    n, C, B = args.n_envs, args.n_classes, args.batch_size
    pool_obs = make(64 * n)  # pre-made steps, so data generation is not timed
    pool_keys = _keys(rng, C, 64 * n)
    actions = rng.integers(0, 3, (64, n, 1))
    infos = [[{"state_id": int(k)} for k in pool_keys[i * n:(i + 1) * n]] for i in range(64)]
    zeros = np.zeros(n, np.float32)

    sb3 = ReplayBuffer(size, space, act, device="cpu", n_envs=n, handle_timeout_termination=True)
    cbr = ClassBalancedReplayBuffer(size, space, act, device="cpu", n_envs=n, n_classes=C)
    cqm = ClassQueueMemory(C, size // C, space.shape, dtype=dtype, seed=args.seed)
    step = [0]

    def add_buffer(buf):
        def fn():
            i = step[0] = (step[0] + 1) % 64
            o = pool_obs[i * n:(i + 1) * n]
            buf.add(o, o, actions[i], zeros, zeros, infos[i])
            return n
        return fn

    def add_queue():
        i = step[0] = (step[0] + 1) % 64
        cqm.add(pool_keys[i * n:(i + 1) * n], pool_obs[i * n:(i + 1) * n])
        return n

    # fill every buffer completely before timing sampling
    for _ in range(size // n + 1):
        add_buffer(sb3)(), add_buffer(cbr)(), add_queue()
    rows = []
    t = args.min_time
    adders = {"sb3": add_buffer(sb3), "cbr": add_buffer(cbr), "cqm": add_queue}
    samplers = {"sb3": lambda: (sb3.sample(B), B)[1], "cbr": lambda: (cbr.sample(B), B)[1],
                "cqm": lambda: (cqm.sample(B), B)[1]}
    add_rates = dict.fromkeys(adders, 0.0)
    sample_rates = dict.fromkeys(samplers, 0.0)
    for _ in range(args.repeats):  # interleaved, best of `repeats`: the machine may be shared
        for k in adders:
            add_rates[k] = max(add_rates[k], rate(adders[k], t))
            sample_rates[k] = max(sample_rates[k], rate(samplers[k], t))
    names = {"cqm": "ClassQueueMemory", "cbr": "ClassBalancedReplayBuffer",
             "sb3": "SB3 ReplayBuffer (uniform)"}
    for key in ("cqm", "cbr", "sb3"):
        rows.append([obs_kind, names[key], add_rates[key], sample_rates[key],
                     sample_rates[key] / sample_rates["sb3"], add_rates[key] / add_rates["sb3"]])
    return rows


def run(args) -> int:
    import torch as th

    th.set_num_threads(1)
    if args.n_classes < 2 or args.buffer_size < args.n_classes:
        raise ValueError("need --n-classes >= 2 and --buffer-size >= --n-classes")
    kinds = ["vector", "screen"] if args.obs == "both" else [args.obs]
    rows = [r for k in kinds for r in _measure(k, args)]
    print(f"{args.n_classes} classes, 100:1 stream, {args.n_envs} transitions per add, "
          f"batch {args.batch_size}; rates in transitions/s")
    report("replay", ["obs", "memory", "add/s", "sample/s", "sample vs SB3", "add vs SB3"],
           rows, args.json)
    return 0
