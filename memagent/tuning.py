"""Hyperparameter search: Optuna's TPE sampler as the Ray Tune searcher, with pruning.

As rl-baselines3-zoo tunes with Optuna, ``memagent tune`` samples configs with TPE
(:class:`optuna.samplers.TPESampler`) through Ray Tune's ``OptunaSearch``; each trial is a run
folder (:func:`memagent.experiment.run_experiment`) that reports its greedy evaluation every
``eval_every`` steps, so a scheduler (ASHA or the median stopping rule, both on the env step)
stops poor trials early. The first trial is the config as given (the presets' values of the
searched keys), so the best found is at least as good as the default on the same seed. The
best config is written as a preset file that ``memagent train --config`` reads.

A search space is ``KEY=SPACE`` with a dotted config key and one of ``uniform(a, b)``,
``loguniform(a, b)``, ``int(a, b)`` (inclusive), ``logint(a, b)`` or ``choice(v1, v2, ...)``.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from memagent.config import build_config, parse_value, split_key, to_dict

SPACES = ("uniform", "loguniform", "int", "logint", "choice")


def parse_space(items: list[str] | None) -> dict[str, tuple[str, list]]:
    """``["agent_kwargs.learning_rate=loguniform(1e-5, 1e-3)"]`` -> ``{key: ("loguniform", [a, b])}``.

    :raises ValueError: a malformed item, an unknown key or space, or bad bounds.
    """
    out: dict[str, tuple[str, list]] = {}
    for item in items or ():
        key, sep, text = item.partition("=")
        m = re.fullmatch(r"\s*(\w+)\((.*)\)\s*", text)
        if not sep or not m:
            raise ValueError(f"--search takes KEY=SPACE, e.g. agent_kwargs.learning_rate=loguniform(1e-5, 1e-3); "
                             f"got {item!r}")
        split_key(key.strip())
        kind, args = m.group(1), parse_value(f"[{m.group(2)}]")
        if kind not in SPACES:
            raise ValueError(f"--search {key}: unknown space {kind!r}; use one of {', '.join(SPACES)}")
        if kind != "choice":
            if len(args) != 2 or not all(isinstance(a, (int, float)) and not isinstance(a, bool) for a in args) \
                    or not args[0] < args[1]:
                raise ValueError(f"--search {key}: {kind}(low, high) needs two numbers low < high, got {args}")
            if kind.startswith("log") and args[0] <= 0:
                raise ValueError(f"--search {key}: {kind} needs low > 0, got {args[0]}")
        elif not args:
            raise ValueError(f"--search {key}: choice needs at least one value")
        out[key.strip()] = (kind, args)
    if not out:
        raise ValueError("give at least one --search KEY=SPACE")
    return out


def _domain(kind: str, args: list):
    from ray import tune

    return {"uniform": lambda: tune.uniform(*args), "loguniform": lambda: tune.loguniform(*args),
            "int": lambda: tune.randint(args[0], args[1] + 1),
            "logint": lambda: tune.lograndint(args[0], args[1] + 1),
            "choice": lambda: tune.choice(args)}[kind]()


def _get_dotted(config: dict, key: str):
    node: Any = config
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _in_space(value, kind: str, args: list) -> bool:
    if kind == "choice":
        return value in args
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if kind in ("int", "logint") and not float(value).is_integer():
        return False
    return args[0] <= value <= args[1]


def _tune_fn(params: dict, *, base: dict, sweep_dir: str) -> None:
    """One tuning trial inside a Ray worker."""
    from ray import tune

    from memagent.sweep import Trial, group_name, run_trial

    config = build_config({**base, **params}, "tune trial")
    n = tune.get_context().get_trial_id()
    run_trial(Trial(f"trials/{n}", group_name(params)[:80] or "base", params, config.env_id,
                    config.seed, to_dict(config)), Path(sweep_dir))


def tune_main(out: Path, base: dict, user_keys: set[str], space: dict, *, trials: int, metric: str,
              scheduler: str, address: str | None, parallel: int | None, cpus_per_trial: float,
              seed: int, preset: Path, say=print) -> int:
    """Search ``space`` over ``trials`` trials, write the best config to ``preset``.

    :param base: the user's values every trial shares (with the tuning's eval settings).
    :param user_keys: the keys of ``base`` the user gave (the preset keeps those).
    :param metric: ``success_rate`` or ``mean_return`` of the greedy evaluations (maximised).
    :param scheduler: ``asha``, ``median`` or ``none``.
    """
    import yaml

    from memagent.config import set_dotted
    from memagent.sweep import check_address, start_ray

    if address:
        check_address(address)
    probe = build_config(base, "tune")  # the config as given, checked before Ray starts
    for key, (_kind, args) in space.items():
        build_config({**base, key: args[0]}, f"--search {key}")
    default = {k: _get_dotted(to_dict(probe), k) for k in space}
    start_point = default if all(_in_space(default[k], *space[k]) for k in space) else None
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    cpus = start_ray(address)
    import optuna
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, MedianStoppingRule
    from ray.tune.search.optuna import OptunaSearch

    try:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(10, max(1, trials // 3)))
        search = OptunaSearch(sampler=sampler, points_to_evaluate=[start_point] if start_point else None)
        every, total = probe.eval_every, probe.total_timesteps
        sched = {"asha": lambda: ASHAScheduler(time_attr="step", max_t=total, reduction_factor=2,
                                               grace_period=min(total, max(every, total // 4))),
                 "median": lambda: MedianStoppingRule(time_attr="step", grace_period=max(every, total // 4),
                                                      min_samples_required=3),
                 "none": lambda: None}[scheduler]()
        at_once = parallel or max(1, int(cpus // cpus_per_trial))
        say(f"{trials} trials of TPE over {', '.join(space)} on {probe.env_id}, {scheduler} pruning on "
            f"{metric}, {at_once} at a time -> {out}")
        from memagent.sweep import _progress_callback

        tuner = tune.Tuner(
            tune.with_resources(tune.with_parameters(_tune_fn, base=base, sweep_dir=str(out)),
                                {"cpu": cpus_per_trial}),
            param_space={k: _domain(*v) for k, v in space.items()},
            tune_config=tune.TuneConfig(metric=metric, mode="max", search_alg=search, scheduler=sched,
                                        num_samples=trials, max_concurrent_trials=at_once, reuse_actors=True),
            run_config=tune.RunConfig(storage_path=str(out / "ray"), name=time.strftime("tune-%Y%m%d-%H%M%S"),
                                      verbose=0, failure_config=tune.FailureConfig(max_failures=0),
                                      callbacks=[_progress_callback(trials, 0, say, label=_label)]),
        )
        grid = tuner.fit()
        done = [r for r in grid if r.error is None and r.metrics.get("done") and r.metrics.get(metric) is not None]
        if not done:
            raise ValueError("no tuning trial finished; see the errors above (or give a larger budget)")
        best = max(done, key=lambda r: r.metrics[metric])
        params = {k: best.config[k] for k in space}
    finally:
        ray.shutdown()
    values: dict = {}
    for key in sorted(user_keys):
        set_dotted(values, key, base[key]) if "." in key else values.__setitem__(key, base[key])
    for key, value in params.items():
        set_dotted(values, key, value.item() if hasattr(value, "item") else value)
    values["env_id"] = probe.env_id
    values["agent"] = probe.agent
    header = (f"# memagent tune: the best of {len(done)} finished trials ({trials} started) on "
              f"{probe.env_id}, final greedy {metric} {best.metrics[metric]:.3f} (seed {probe.seed})\n"
              f"# train it with: memagent train --config {preset}\n")
    preset = Path(preset)
    preset.parent.mkdir(parents=True, exist_ok=True)
    preset.write_text(header + yaml.safe_dump(values, sort_keys=False))
    build_config(values, f"the written preset {preset}")  # it must train as written
    say(f"best {metric} {best.metrics[metric]:.3f} with {params}; wrote {preset}")
    return 0


def _label(trial) -> str:
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in trial.config.items() if not isinstance(v, dict))
