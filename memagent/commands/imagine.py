"""``memagent imagine``: the MAN agent's imagined screen of every state, as a figure (MAN §4.2).

Trains (or loads with ``--run``) the ``man`` agent through the same pipeline as ``memagent
train --agent man`` (:mod:`memagent.agents.man_adapter`, defaults from
``memagent/hyperparams/man.yml``; flags override them): tabular Q-learning
first, then acting with it and filing every screen under its ``state_id``, then the long-term
memory from class-balanced batches. Writes a PNG with the imagined screens laid out position
(horizontal) x direction (vertical) beside real screens of the same states, unvisited states
greyed out with a red cross, and prints the coverage and a judge's verdict: a classifier of
state ids trained on real screens of a separate random-policy run recognises the imagined
screen of each visited state as its own (or not), and, where the env renders fresh screens
of a state (``unwrapped.engine.screens``), the variety and fidelity of 16 imagined screens per
visited state in the judge's feature space (:func:`memagent.judge.variety_fidelity`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

DEFAULTS = {"judge_steps": 6_000, "n_measured": 16, "n_reference": 64}
#: the judge's CNN (:class:`memagent.judge.CNNClassifier`): its class defaults
JUDGE_CNN: dict = {}


def register(subparsers) -> None:
    p = subparsers.add_parser("imagine", help="imagine the screen of every state (MAN agent) and draw it",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("--env", default="memagent/Screens-v0",
                   help="env id with info['state_id'] and unwrapped n_positions/n_directions")
    p.add_argument("--out", required=True, metavar="FILE.png", help="where to write the figure")
    p.add_argument("--run", metavar="DIR", help="load a run saved with --save-run instead of training")
    p.add_argument("--save-run", metavar="DIR", help="save the trained agent and memories here")
    p.add_argument("--memory", choices=["typeA", "typeB"], default=None,
                   help="long-term memory: typeA (CVAE) or typeB (lambda-hot VAE)")
    p.add_argument("--steps", type=int, default=None,
                   help="Adam steps of the long-term memory (default: man.yml's memory_steps)")
    p.add_argument("--q-steps", type=int, default=None,
                   help="env steps of Q-learning (the behaviour policy; default: man.yml's total_timesteps)")
    p.add_argument("--collect-steps", type=int, default=None,
                   help="env steps of acting and filing screens")
    p.add_argument("--epsilon", type=float, default=None, help="exploration while collecting")
    p.add_argument("--capacity", type=int, default=None, help="screens kept per state")
    p.add_argument("--judge-steps", type=int, default=DEFAULTS["judge_steps"],
                   help="random-policy steps of real screens for the judge (0: no judge)")
    p.add_argument("--channels", default=None,
                   help="conv channels of the long-term memory, comma-separated")
    p.add_argument("--stem", type=int, choices=[2, 4], default=None,
                   help="stride of the first conv (4: patchify, cheap on 64x64 screens)")
    p.add_argument("--learning-rate", type=float, default=None, help="Adam step size")
    p.add_argument("--beta", type=float, default=None, help="weight of the memory's KL term")
    p.add_argument("--alpha", type=float, default=None,
                   help="weight of the root term BCE(x, D(z0, class)), z0 drawn from the class's "
                   "prior (Type A: the paper's extra term; Type B: our addition, 0 = the paper)")
    p.add_argument("--root-noise", type=float, default=None,
                   help="spread of z0 around the class's prior mean in the root term (1: samples "
                   "of the prior, so the decoder learns what imagined latents decode to; 0: the "
                   "prior's mean only, the paper's Type A term)")
    p.add_argument("--class-code", action=argparse.BooleanOptionalAction, default=None,
                   help="Type B: the decoder also reads p(class | z) under the lambda-hot prior "
                   "(a per-class decoder bias; still a function of z alone)")
    p.add_argument("--pool", type=int, default=None,
                   help="the memory's networks see and decode pool x pool block means of the "
                   "screen (2: 32 x 32 for 64 x 64 screens, the judge's resolution)")
    p.add_argument("--shift", type=int, default=None,
                   help="train the memory on screens moved by up to this many pixels each way "
                   "(a multiple of --pool; 0: as stored)")
    p.add_argument("--latent-prior", choices=["prior", "classes"], default=None,
                   help="where imagined latents are drawn: the state's prior (the paper) or, "
                   "fitted after training, the aggregate posterior of the state's stored screens")
    p.add_argument("--linear-skip", action=argparse.BooleanOptionalAction, default=None,
                   help="a linear path beside the convs (on by default: on this budget it "
                   "lifts the judged share from ~60%% to ~90%% for Type A)")
    p.add_argument("--temperature", type=float, default=1.0,
                   help="spread of the imagined latents around the state's prior mean (1: the "
                   "prior; 0: the state's root screen; lower is more typical, less varied)")
    p.add_argument("--device", default="cpu", help="cpu | cuda | auto")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: every core this process may use)")
    p.add_argument("--metrics", metavar="FILE.json",
                   help="also write the judge's figures (recognised, variety, fidelity, Type B "
                   "recognize) as JSON")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--show", action="store_true", help="also open the figure in a pygame window")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bars: a line at every tenth of each phase instead")
    p.set_defaults(func=run)


def _make_env(env_id: str, seed: int):
    import gymnasium as gym

    import memagent  # noqa: F401  (registers the ids)

    try:
        env = gym.make(env_id)
    except gym.error.Error as err:
        raise ValueError(f"--env: {err}") from err
    base = env.unwrapped
    missing = [a for a in ("n_positions", "n_directions", "n_states") if not hasattr(base, a)]
    if missing:
        raise ValueError(f"--env {env_id} has no {', '.join(missing)}: `imagine` needs a "
                         "state-keyed gridworld such as memagent/Screens-v0")
    env.reset(seed=seed)
    return env


def man_config(args):
    """The ``man`` run config of the flags: man.yml's values, the flags over them."""
    from memagent.config import build_config, preset_for

    for name in ("steps", "q_steps", "collect_steps", "capacity"):
        value = getattr(args, name, None)
        if value is not None and value < (1 if name == "capacity" else 0):
            raise ValueError(f"--{name.replace('_', '-')} must be >= 0, got {value}")
    values = {"agent": "man", "env_id": args.env, "seed": args.seed, "device": args.device}
    if args.memory is not None:
        values["memory"] = args.memory
    if args.q_steps is not None:
        values["total_timesteps"] = args.q_steps
    agent_kwargs = {k: v for k, v in (("memory_steps", args.steps), ("collect_steps", args.collect_steps),
                                      ("epsilon", args.epsilon), ("capacity", args.capacity))
                    if v is not None}
    memory_kwargs = {k: v for k, v in (("learning_rate", getattr(args, "learning_rate", None)),
                                       ("beta", getattr(args, "beta", None)),
                                       ("alpha", getattr(args, "alpha", None)),
                                       ("root_noise", getattr(args, "root_noise", None)),
                                       ("pool", getattr(args, "pool", None)),
                                       ("shift", getattr(args, "shift", None)),
                                       ("latent_prior", getattr(args, "latent_prior", None)))
                     if v is not None}
    net = {k: v for k, v in (("channels", getattr(args, "channels", None)), ("stem", getattr(args, "stem", None)),
                             ("skip", getattr(args, "linear_skip", None))) if v is not None}
    if "channels" in net:
        net["channels"] = [int(c) for c in str(net["channels"]).split(",")]
    if net:  # over the preset's network, key by key
        preset_net = preset_for("man", args.env).get("memory_kwargs", {}).get("net_kwargs", {})
        memory_kwargs["net_kwargs"] = {**preset_net, **net}
    if getattr(args, "class_code", None) is not None:
        memory_kwargs["class_code"] = args.class_code
    if agent_kwargs:
        values["agent_kwargs"] = agent_kwargs
    if memory_kwargs:
        values["memory_kwargs"] = memory_kwargs
    config = build_config(values, "imagine")
    if config.memory != "typeB" and "class_code" in config.memory_kwargs:
        raise ValueError("--class-code / --no-class-code applies to --memory typeB only")
    return config


def _say(message: str) -> None:
    print(f"memagent imagine: {message}", flush=True)


def phase_progress(args):
    """The :class:`memagent.progress.PhaseProgress` of the flags (bars unless --no-progress)."""
    from memagent.progress import PhaseProgress

    return PhaseProgress(bar=not getattr(args, "no_progress", False), say=_say)


def train_agent(env, args, phases=None):
    """The man agent of the flags, trained (Q-learning, acting and filing, long-term memory),
    every phase reported to ``phases`` (a :class:`memagent.progress.PhaseProgress`)."""
    from memagent.agent import LearnCallback
    from memagent.agents.man_adapter import ManAdapter

    phases = phases or phase_progress(args)
    adapter = ManAdapter(man_config(args), device=args.device)
    adapter.build()
    adapter.progress, adapter.log = phases, _say
    total = adapter.config.total_timesteps

    class QSteps(LearnCallback):  # Q-learning's env steps, as memagent train's bar shows them
        def on_step(self, agent, infos) -> bool:
            returns = agent.agent.policy.episode_returns[-100:]
            mean = float(np.mean(returns)) if returns else float("nan")
            return phases("Q-learning the behaviour policy", agent.num_timesteps, total,
                          episodes=len(agent.agent.policy.episode_returns), mean_return=mean)

    adapter.learn(total, callbacks=[QSteps()] if total else [])
    phases.close()
    return adapter


def random_screens(env_id: str, n_steps: int, seed: int):
    """``n_steps`` real screens of a random-policy run and their state ids: ``(N, H, W, 3)``
    uint8, ``(N,)`` ints. The last screen of an episode is kept too: on Screens-v0 the goal's
    screens are only ever terminal ones, and the agent files them."""
    import numpy as np

    env = _make_env(env_id, seed)
    obs, info = env.reset(seed=seed)
    env.action_space.seed(seed)
    screens, ids, done = [], [], False
    for _ in range(n_steps):
        screens.append(obs)
        ids.append(info["state_id"])
        if done:
            obs, info = env.reset()
            done = False
        else:
            obs, _, term, trunc, info = env.step(env.action_space.sample())
            done = term or trunc
    return np.stack(screens), np.array(ids)


def judge_visited(env_id: str, agent, imagined, n_steps: int, seed: int):
    """Share of imagined screens of visited states that a classifier of state ids (a small CNN,
    see :class:`memagent.judge.CNNClassifier`), trained on real screens of a random-policy run
    (another seed), recognises as their own state.

    :return: ``(score, per_state, n_states_in_judge_data, accuracy_on_held_out_real,
        (held-out real screens, their state ids))``.
    """
    import numpy as np

    from memagent.judge import Judge

    cut = int(0.8 * n_steps)  # fit on 80 %, report accuracy on the last 20 % of real screens
    _say(f"judging: training a CNN classifier of state ids on {cut:,} real screens of a "
         f"{n_steps:,}-step random-policy run (the memory's outputs never reach it)")
    screens, ids = random_screens(env_id, n_steps, seed + 1)
    judge = Judge(pool=2, classifier="cnn", seed=seed, cnn_kwargs=JUDGE_CNN).fit(screens[:cut], ids[:cut])
    real_acc = judge.score(screens[cut:], ids[cut:]) if cut < len(ids) else float("nan")
    visited = np.flatnonzero(agent.coverage()["visited"])
    per_state = judge.per_class(imagined[visited], visited)
    score = float(per_state.mean()) if len(visited) else float("nan")
    return score, per_state, len(set(ids.tolist())), real_acc, (screens[cut:], ids[cut:]), judge


def measure_imagined(env_id: str, agent, judge, seed: int, temperature: float = 1.0):
    """Recognised share, variety and fidelity (:func:`memagent.judge.variety_fidelity`) of
    ``n_measured`` imagined screens per visited state, against fresh real screens of the same
    states that the env renders (``n_measured`` probes + ``n_reference``); ``None`` for an env
    that cannot render screens of a given state."""
    import warnings

    from memagent.judge import variety_fidelity
    from memagent.memory.generative import UnseenClassWarning

    engine = getattr(_make_env(env_id, seed).unwrapped, "engine", None)
    visited = np.flatnonzero(agent.coverage()["visited"])
    if not hasattr(engine, "screens") or len(visited) == 0:
        return None
    n, m = DEFAULTS["n_measured"], DEFAULTS["n_measured"] + DEFAULTS["n_reference"]
    rng = np.random.default_rng([seed, 2])
    real = engine.screens(np.repeat(visited, m), rng).reshape(len(visited), m, *agent.short_term.item_shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnseenClassWarning)  # visited states only
        imagined = agent.imagine(visited, n, temperature=temperature)    # (K, n, H, W, 3)
    out = variety_fidelity(judge, imagined, real, n_probe=n)
    out["recognised"] = float(judge.per_class(imagined, visited).mean())
    return out


def run(args) -> int:
    from memagent.agents.man_adapter import ManAdapter
    from memagent.figures import show
    from memagent.utils import set_seed

    if not str(args.out).lower().endswith(".png"):
        raise ValueError(f"--out must end in .png, got {args.out}")
    from memagent.utils import cpu_threads

    threads = cpu_threads(getattr(args, "threads", None))
    set_seed(args.seed)
    env = _make_env(args.env, args.seed)
    if args.run:
        from memagent.runs import check_run_dir, read_config

        run_dir = check_run_dir(args.run)
        adapter = ManAdapter.load(read_config(run_dir), run_dir, device=args.device)
    else:
        adapter = train_agent(env, args, phase_progress(args))
    agent = adapter.agent
    if args.save_run:
        from memagent import runs
        from memagent.config import to_dict

        Path(args.save_run).mkdir(parents=True, exist_ok=True)
        runs.write_json(Path(args.save_run) / runs.CONFIG_FILE, to_dict(adapter.config))
        adapter.save(Path(args.save_run))
        runs.write_state(Path(args.save_run), status="completed", steps=adapter.num_timesteps)
    temperature = getattr(args, "temperature", 1.0)
    print(adapter.draw(Path(args.out), seed=args.seed, env_id=args.env, temperature=temperature))
    imagined, figure, cov = adapter.imagined, adapter.figure, agent.coverage()
    metrics = {"memory": type(agent.long_term).__name__, "temperature": temperature,
               "visited": int(cov["visited"].sum()), "n_states": agent.n_states,
               "threads": threads, "seed": args.seed}
    if args.judge_steps > 0:
        score, _, n_judge_states, real_acc, held_out, judge = judge_visited(
            args.env, agent, imagined, args.judge_steps, args.seed)
        print(f"judge (CNN classifier of state ids trained on real screens of "
              f"{n_judge_states} states, {real_acc:.1%} on held-out real screens): {score:.1%} "
              f"of imagined screens of visited states recognised as their own state "
              f"({type(agent.long_term).__name__}, temperature {temperature:g})")
        metrics.update(judge_real=real_acc, recognised_figure=score)
        measured = measure_imagined(args.env, agent, judge, args.seed, temperature)
        if measured is not None:
            n = DEFAULTS["n_measured"]
            print(f"{n} imagined screens per visited state, in the judge's feature space: "
                  f"{measured['recognised']:.1%} recognised; variety {measured['variety']:.2f} "
                  f"of real screens' (mean pairwise distance); fidelity {measured['fidelity']:.2f} "
                  f"(distance to the nearest real screen of the state, real screens: 1)")
            metrics.update({k: measured[k] for k in ("recognised", "variety", "fidelity")})
    if hasattr(agent.long_term, "recognize"):
        if args.judge_steps > 0:  # real screens the memory never saw, of the states it knows
            screens, ids = held_out
            keep = cov["visited"][ids]
            screens, ids, what = screens[keep], ids[keep], "held-out real screens"
        else:
            ids = np.flatnonzero(cov["visited"])
            screens, what = agent.real_screens()[ids], "filed real screens (newest per state)"
        acc = float((agent.long_term.recognize(screens) == ids).mean()) if len(ids) else float("nan")
        print(f"Type B recognize: {acc:.1%} of {len(ids)} {what} of visited states")
        metrics["recognize"] = acc
    if getattr(args, "metrics", None):
        from memagent.runs import write_json

        write_json(Path(args.metrics), metrics)
    if args.show:
        show(figure)
    return 0
