"""Seeds x configs x envs as Ray Tune trials, each a normal run folder under one sweep folder.

A sweep folder::

    SWEEP/
        sweep.json                      the spec (base config, grid, envs, seeds) and every trial
        {env}/{config}/seed_{s}/        one run folder per trial (memagent.runs), results.json in it
        ray/                            Ray Tune's own experiment state

Every trial is :func:`memagent.experiment.run_experiment` with ``eval_episodes`` fresh greedy
episodes at the end (and every ``eval_every`` steps), so each run folder holds the final
greedy success and return, the learning curve and training steps/s in ``results.json``.

Trials run on Ray: by default a local Ray started in this process on this machine's cores
(nothing to start, gone when the sweep ends); ``address="HOST:PORT"`` joins a running cluster
(``ray start --head`` on one machine, ``ray start --address HOST:PORT`` on the others; the
sweep folder must then be on a filesystem every node sees, and memagent installed on each).
Each trial asks Ray for ``cpus_per_trial`` CPUs and trains with that many torch threads.

A sweep resumes: started again on the same folder (or with ``--resume``), it skips every
trial whose ``results.json`` is complete and starts the others from scratch (a seeded run
reproduces, so nothing is lost by re-running a trial that was killed half way).
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import socket
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from memagent.config import TrainConfig, build_config, split_key, to_dict

SPEC_FILE = "sweep.json"


@dataclass
class Trial:
    """One run of a sweep."""

    trial_id: str
    """``{env}/{config}/seed_{s}``: also the run folder under the sweep folder."""
    group: str
    """the config's name in the sweep (``base`` without a grid)."""
    params: dict
    """the grid point: dotted config keys -> values."""
    env_id: str
    seed: int
    config: dict
    """the resolved :class:`memagent.config.TrainConfig` of the run."""

    def run_dir(self, sweep_dir: Path) -> Path:
        return Path(sweep_dir) / self.trial_id


def parse_grid(items: list[str] | None) -> dict[str, list]:
    """``["memory=gru,lstm", "agent_kwargs.learning_rate=[1e-3, 3e-4]"]`` -> ``{key: [values]}``.

    A value list is YAML (``[a, b]``) or comma-separated YAML scalars.

    :raises ValueError: no ``=``, an unknown key, or an empty list.
    """
    from memagent.config import parse_value

    grid: dict[str, list] = {}
    for item in items or ():
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"--grid takes KEY=V1,V2,... (or KEY=[V1, V2]), got {item!r}")
        split_key(key)
        text = text.strip()
        values = parse_value(text) if text.startswith("[") else [parse_value(v) for v in text.split(",")]
        if not isinstance(values, list) or not values:
            raise ValueError(f"--grid {key}: give at least one value, e.g. {key}=1,2")
        grid[key] = values
    return grid


def parse_seeds(text: str) -> list[int]:
    """``"0-9"`` -> 0..9, ``"0,3,7"`` -> [0, 3, 7].

    :raises ValueError: not a range or a list of ints.
    """
    seeds: list[int] = []
    try:
        for part in str(text).split(","):
            lo, sep, hi = part.strip().partition("-")
            seeds.extend(range(int(lo), int(hi) + 1) if sep else [int(lo)])
    except ValueError:
        raise ValueError(f"--seeds takes a range or a list, e.g. 0-9 or 0,3,7; got {text!r}") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"--seeds must name distinct seeds, got {text!r}")
    return seeds


def _slug(text: str) -> str:
    from memagent.runs import sanitize

    return sanitize(text)


def group_name(params: dict) -> str:
    """A folder-safe name of a grid point: ``memory-gru_learning_rate-0.001`` (``base`` if empty)."""
    if not params:
        return "base"
    return "_".join(f"{key.split('.')[-1]}-{_slug(json.dumps(v) if isinstance(v, (list, dict)) else str(v))}"
                    for key, v in params.items())


def plan(base: dict, grid: dict[str, list], envs: list[str], seeds: list[int]) -> list[Trial]:
    """Every (grid point, env, seed), each config resolved and checked now (before any run).

    :param base: the user's config values (file, ``--set``, flags) that every trial shares.
    :param grid: dotted key -> values; the trials take the product.
    :raises ValueError: a grid point, env or seed the agent cannot run (naming it).
    """
    keys = list(grid)
    points = [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*grid.values())]
    names = [group_name(p) for p in points]
    if len(set(names)) != len(names) or any(len(n) > 80 for n in names):
        names = [f"c{i}" for i in range(len(points))]
    trials = []
    for (point, name), env_id, seed in itertools.product(zip(points, names, strict=True), envs, seeds):
        values = {**base, **point, "env_id": env_id, "seed": seed}
        where = f"grid point {point}" if point else "the config"
        try:
            config = build_config(values, f"sweep ({where}, {env_id})")
        except ValueError as err:
            raise ValueError(f"{err}" if point == {} else f"{where} on {env_id}: {err}") from None
        trials.append(Trial(f"{_slug(env_id)}/{name}/seed_{seed}", name, point, env_id, seed, to_dict(config)))
    return trials


def trial_done(run_dir: Path) -> bool:
    """Whether the run folder holds a complete results.json (a finished trial)."""
    from memagent.experiment import RESULTS_FILE

    try:
        results = json.loads((Path(run_dir) / RESULTS_FILE).read_text())
    except (OSError, ValueError):
        return False
    return results.get("status") == "completed" and "final" in results


def write_spec(sweep_dir: Path, spec: dict, trials: list[Trial]) -> None:
    from memagent.runs import write_json

    write_json(Path(sweep_dir) / SPEC_FILE, {**spec, "trials": [asdict(t) for t in trials]})


def read_spec(sweep_dir: Path) -> dict:
    path = Path(sweep_dir) / SPEC_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{str(sweep_dir)!r} holds no sweep ({SPEC_FILE}); start one with "
                                "memagent sweep --out DIR")
    return json.loads(path.read_text())


def check_same_sweep(sweep_dir: Path, spec: dict) -> None:
    """A sweep folder holds one sweep: starting another spec there is an error."""
    path = Path(sweep_dir) / SPEC_FILE
    if not path.is_file():
        return
    old = {k: v for k, v in json.loads(path.read_text()).items() if k != "trials"}
    if old != spec:
        diff = sorted(k for k in set(old) | set(spec) if old.get(k) != spec.get(k))
        raise ValueError(f"{str(sweep_dir)!r} holds another sweep (it differs in {', '.join(diff)}); "
                         f"resume it with memagent sweep --resume {sweep_dir}, or pick another --out")


# --------------------------------------------------------------------------- Ray


def check_address(address: str, timeout: float = 3.0) -> str:
    """``HOST:PORT`` of a Ray cluster that answers on TCP (``ray://`` and ``auto`` pass as they are).

    :raises ValueError: malformed, or nothing listens there (with how to start a cluster).
    """
    if address == "auto" or address.startswith("ray://"):
        return address
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"--address must be HOST:PORT of a Ray cluster's head (e.g. 127.0.0.1:6379), got {address!r}")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout):
            pass
    except OSError as err:
        raise ValueError(f"--address {address}: no Ray cluster answers there ({err.strerror or err}); "
                         "start one with `ray start --head --port PORT` or drop --address to run on "
                         "a local Ray") from None
    return address


def start_ray(address: str | None, num_cpus: int | None = None):
    """Join the cluster at ``address``, or start a local Ray in this process (``num_cpus``).

    :return: the CPUs the cluster has.
    """
    host = (address or "").rpartition(":")[0]
    if not address or host in ("localhost", "::1") or host.startswith("127."):
        # a Ray on this machine only: every address on the loopback (Ray otherwise binds to, and
        # resolves 127.0.0.1 to, the machine's network address)
        os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # Tune's legacy reporter: silent at verbose=0
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    import logging

    import ray

    for name in ("ray.tune", "ray.train", "ray.air"):  # trial errors are reported by the sweep
        logging.getLogger(name).setLevel(logging.CRITICAL)
    kwargs: dict[str, Any] = dict(include_dashboard=False, log_to_driver=False, logging_level="error",
                                  ignore_reinit_error=True)
    if address:
        check_address(address)
        token = os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH") or \
            (Path.home() / ".ray" / "auth_token").is_file()
        if token:  # `ray start` turns token authentication on and writes ~/.ray/auth_token
            os.environ.setdefault("RAY_AUTH_MODE", "token")
        try:
            ray.init(address=address, **kwargs)
        except (ConnectionError, RuntimeError) as err:
            raise ValueError(f"--address {address}: could not join the Ray cluster ({str(err).splitlines()[0]}); "
                             "with token authentication (ray start's default) the token must be in "
                             "~/.ray/auth_token or RAY_AUTH_TOKEN on this machine") from None
    else:
        ray.init(address="local", num_cpus=num_cpus or os.cpu_count(), **kwargs)
    return int(ray.cluster_resources().get("CPU", 1))


def _trial_fn(space: dict) -> None:
    """One sweep trial, inside a Ray worker."""
    run_trial(Trial(**space["trial"]), Path(space["sweep_dir"]))


def run_trial(trial: Trial, sweep_dir: Path) -> None:
    """Train ``trial`` in its run folder from scratch, reporting every evaluation to Ray Tune."""
    from ray import tune

    from memagent.config import config_from_dict
    from memagent.experiment import run_experiment
    from memagent.utils import tune_malloc

    tune_malloc()  # as the memagent command does for itself: this worker runs our trials only
    run_dir = trial.run_dir(sweep_dir)
    if run_dir.exists():  # killed half way before: a seeded run starts again and reproduces
        shutil.rmtree(run_dir)
    config = config_from_dict(trial.config)

    def on_eval(metrics: dict) -> None:
        # the last one comes with the final report below (a scheduler must see that one whole)
        if not metrics["final"] and metrics["step"] < config.total_timesteps:
            tune.report({k: v for k, v in metrics.items() if v is not None and k != "final"})

    out = run_experiment(config, run_dir, progress=False, on_eval=on_eval,
                         extra={"trial": trial.trial_id, "group": trial.group, "params": trial.params},
                         say=lambda msg: print(f"{trial.trial_id}: {msg}", flush=True))
    final = out.get("final", {})
    tune.report({"step": out["steps"], "success_rate": final.get("success_rate"),
                 "mean_return": final.get("mean_return"), "steps_per_second": out["steps_per_second"],
                 "done": True, "run_dir": str(run_dir)})


def _trial_label(trial) -> str:
    return trial.config["trial"]["trial_id"]


def _progress_callback(total: int, done_before: int, say, label=_trial_label):
    from ray import tune

    class Progress(tune.Callback):
        """One line per trial start, end and error: done / running / failed."""

        def __init__(self):
            self.done, self.running, self.failed, self.t0 = done_before, 0, 0, {}

        def _counts(self) -> str:
            return f"[{self.done}/{total} done, {self.running} running, {self.failed} failed]"

        def on_trial_start(self, iteration, trials, trial, **info):
            self.running += 1
            self.t0[trial.trial_id] = time.monotonic()
            say(f"{self._counts()} started {label(trial)}")

        def on_trial_complete(self, iteration, trials, trial, **info):
            self.running, self.done = self.running - 1, self.done + 1
            r = trial.last_result or {}
            if not r.get("done"):  # a scheduler stopped it early
                say(f"{self._counts()} stopped {label(trial)} at step {r.get('step', 0):,} "
                    f"({r.get('success_rate', r.get('mean_return', float('nan'))):.2f})")
                return
            succ = r.get("success_rate")
            what = (f"success {succ:.2f}, " if succ is not None else "") + \
                f"return {r.get('mean_return', float('nan')):.2f}" + \
                (f", {r['steps_per_second']:,.0f} steps/s" if r.get("steps_per_second") else "")
            secs = time.monotonic() - self.t0.get(trial.trial_id, time.monotonic())
            say(f"{self._counts()} finished {label(trial)}: {what} ({secs:.0f} s)")

        def on_trial_error(self, iteration, trials, trial, **info):
            self.running, self.failed = self.running - 1, self.failed + 1
            say(f"{self._counts()} FAILED {label(trial)} (its error follows at the end)")

    return Progress()


def _short_dirname(trial) -> str:
    return f"trial_{trial.trial_id}"


def run_sweep(sweep_dir: Path, trials: list[Trial], *, address: str | None = None,
              parallel: int | None = None, cpus_per_trial: float = 1, say=print) -> dict:
    """Run the unfinished ``trials`` as Ray Tune trials; finished ones are skipped.

    :param sweep_dir: the sweep folder (made absolute; run folders go under it).
    :param address: a Ray cluster's ``HOST:PORT``; ``None`` starts a local Ray.
    :param parallel: trials at a time (default: the cluster's CPUs // ``cpus_per_trial``).
    :param cpus_per_trial: CPUs Ray reserves for each trial.
    :return: ``{"done": [...], "failed": {trial_id: error line}, "skipped": [...]}``.
    :raises ValueError: an unreachable ``address``.
    """
    sweep_dir = Path(sweep_dir).resolve()
    skipped = [t.trial_id for t in trials if trial_done(t.run_dir(sweep_dir))]
    todo = [t for t in trials if t.trial_id not in set(skipped)]
    if not todo:
        say(f"all {len(trials)} trials are done already; memagent report {sweep_dir}")
        return {"done": [], "failed": {}, "skipped": skipped}
    where = f"the Ray cluster at {address}" if address else "a local Ray"
    cpus = start_ray(address, num_cpus=None)
    import ray
    from ray import tune

    try:
        at_once = parallel or max(1, int(cpus // cpus_per_trial))
        say(f"{len(trials)} trials ({len(skipped)} done before, {len(todo)} to run) on {where} "
            f"({cpus} CPUs), {at_once} at a time, {cpus_per_trial:g} CPU(s) each -> {sweep_dir}")
        tuner = tune.Tuner(
            tune.with_resources(_trial_fn, {"cpu": cpus_per_trial}),
            param_space={"sweep_dir": str(sweep_dir),
                         "trial": tune.grid_search([asdict(t) for t in todo])},
            tune_config=tune.TuneConfig(max_concurrent_trials=at_once, reuse_actors=True,
                                        trial_dirname_creator=_short_dirname),
            run_config=tune.RunConfig(
                storage_path=str(sweep_dir / "ray"), name=time.strftime("sweep-%Y%m%d-%H%M%S"),
                verbose=0, failure_config=tune.FailureConfig(max_failures=0),
                callbacks=[_progress_callback(len(trials), len(skipped), say)]),
        )
        grid = tuner.fit()
        done, failed = [], {}
        for result in grid:
            tid = result.config["trial"]["trial_id"]
            if result.error is not None:
                lines = [line for line in str(result.error).splitlines() if line.strip()]
                failed[tid] = lines[-1] if lines else type(result.error).__name__
            else:
                done.append(tid)
        return {"done": done, "failed": failed, "skipped": skipped}
    finally:
        ray.shutdown()


def sweep_main(sweep_dir: Path, spec: dict, trials: list[Trial], *, address=None, parallel=None,
               cpus_per_trial: float = 1, say=print) -> int:
    """Write the spec, run the trials, print what failed; exit status 1 if any did."""
    sweep_dir = Path(sweep_dir)
    if address:
        check_address(address)  # before anything is written
    check_same_sweep(sweep_dir, spec)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    write_spec(sweep_dir, spec, trials)
    t0 = time.perf_counter()
    out = run_sweep(sweep_dir, trials, address=address, parallel=parallel,
                    cpus_per_trial=cpus_per_trial, say=say)
    for tid, line in out["failed"].items():
        print(f"memagent sweep: trial {tid} failed: {line}", file=sys.stderr)
    if out["done"] or out["failed"]:
        say(f"{len(out['done']) + len(out['skipped'])}/{len(trials)} trials done, {len(out['failed'])} "
            f"failed, in {time.perf_counter() - t0:.1f} s; see them with: memagent report {sweep_dir}")
    return 1 if out["failed"] else 0


__all__ = ["Trial", "parse_grid", "parse_seeds", "plan", "run_sweep", "sweep_main", "TrainConfig"]
