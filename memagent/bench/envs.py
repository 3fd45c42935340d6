"""``memagent bench envs``: steps per second of the gridworlds, batched vs one gymnasium env.

For each world and observation mode it measures, with random actions and autoreset:

- ``gym.make``: one env with its wrappers (TimeLimit, OrderEnforcing, PassiveEnvChecker),
  stepped in a Python loop: the peer (what SB3's ``DummyVecEnv`` runs per env);
- ``engine@N``: the batched engine alone: step, observe into a reused buffer
  (``observe(out=...)``), reset the finished worlds;
- ``vec@N``: ``memagent.envs.make_vec`` (the SB3 ``VecEnv``: a new observation array every
  step, as SB3 expects, infos, terminal observations, episode statistics);

- ``vec+reuse@max``: the same with ``reuse_obs=True`` (observation arrays nobody references
  any more are handed out again, judged by reference counts: opt-in);

at ``N`` in ``--sizes`` (default 1, 64, 1024, 4096), and the ratios ``engine@max / gym.make``,
``vec@max / gym.make`` and ``vec+reuse@max / vec@max`` (the reuse's gain).
"""

from __future__ import annotations

import sys

import numpy as np

from memagent.bench.common import add_common_args, rate, report

DEFAULT_SIZES = (1, 64, 1024, 4096)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "envs", help="steps/s of the gridworlds: batched engine and VecEnv vs one gymnasium env",
        description=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--envs", nargs="+", default=None, metavar="ENV_ID",
                        help="ids to measure (default: all; `memagent/` may be left out)")
    parser.add_argument("--modes", nargs="+", default=["symbolic", "pixels"],
                        choices=["symbolic", "pixels"], help="observation modes")
    parser.add_argument("--sizes", nargs="+", type=int, default=list(DEFAULT_SIZES),
                        metavar="N", help="numbers of worlds for the batched measurements")
    parser.add_argument("--min-time", type=float, default=0.5,
                        help="seconds each measurement runs for at least")
    add_common_args(parser)
    parser.set_defaults(func=run)


def _actions(n_actions: int, n_envs: int, seed: int, pool: int = 16) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, n_actions, n_envs) for _ in range(pool)]


def single_env_rate(env_id: str, obs_mode: str, seed: int, min_time: float) -> float:
    import gymnasium as gym

    env = gym.make(env_id, obs_mode=obs_mode)
    env.reset(seed=seed)
    actions = _actions(env.action_space.n, 1000, seed)[0].tolist()

    def run() -> int:
        for a in actions:
            _, _, term, trunc, _ = env.step(a)
            if term or trunc:
                env.reset()
        return len(actions)

    return rate(run, min_time)


def engine_rate(env_id: str, obs_mode: str, n: int, seed: int, min_time: float) -> float:
    from memagent.envs import make_engine

    eng = make_engine(env_id, n, seed=seed, obs_mode=obs_mode)
    pool, limit = _actions(eng.n_actions, n, seed), eng.max_steps
    obs = np.empty((n,) + eng.observation_space.shape, dtype=eng.observation_space.dtype)   # reused: observe(out=)
    state = {"i": 0}

    def run() -> int:
        for _ in range(4):
            _, terminated, _ = eng.step(pool[state["i"] % len(pool)])
            state["i"] += 1
            eng.observe(out=obs)
            done = np.flatnonzero(terminated | (eng.t >= limit))
            if len(done):
                eng.reset(done)
                eng.observe(done)
        return 4 * n

    return rate(run, min_time)


def vec_rate(env_id: str, obs_mode: str, n: int, seed: int, min_time: float,
             reuse_obs: bool = False) -> float:
    from memagent.envs import make_vec

    venv = make_vec(env_id, n, seed=seed, obs_mode=obs_mode, reuse_obs=reuse_obs)
    venv.reset()
    pool = _actions(venv.action_space.n, n, seed)
    state = {"i": 0}

    def run() -> int:
        for _ in range(4):
            venv.step(pool[state["i"] % len(pool)])
            state["i"] += 1
        return 4 * n

    return rate(run, min_time)


def run(args) -> int:
    from memagent.commands.envs import full_id
    from memagent.envs import ENVS

    env_ids = [full_id(e) for e in args.envs] if args.envs else list(ENVS)
    sizes = sorted(set(args.sizes))
    if not sizes or sizes[0] < 1:
        raise ValueError(f"--sizes must be positive integers, got {args.sizes}")
    headers = (["env", "obs", "gym.make"] + [f"engine@{n}" for n in sizes]
               + [f"vec@{n}" for n in sizes]
               + [f"vec+reuse@{sizes[-1]}", f"engine@{sizes[-1]} / gym.make", f"vec@{sizes[-1]} / gym.make",
                  f"vec+reuse@{sizes[-1]} / vec@{sizes[-1]}"])
    rows = []
    for env_id in env_ids:
        for mode in args.modes:
            single = single_env_rate(env_id, mode, args.seed, args.min_time)
            engine = [engine_rate(env_id, mode, n, args.seed, args.min_time) for n in sizes]
            vec = [vec_rate(env_id, mode, n, args.seed, args.min_time) for n in sizes]
            reuse = vec_rate(env_id, mode, sizes[-1], args.seed, args.min_time, reuse_obs=True)
            rows.append([env_id, mode, single, *engine, *vec, reuse, engine[-1] / single,
                         vec[-1] / single, reuse / vec[-1]])
            print(f"measured {env_id} {mode}", file=sys.stderr, flush=True)
    report("envs", headers, rows, args.json,
           extra={"unit": "steps per second (pixels: frames per second)", "sizes": sizes,
                  "min_time": args.min_time})
    return 0
