"""Run folders: the resolved config, checkpoints, episodes.csv and versions of one training run.

``memagent train`` writes one folder per run::

    runs/{env}__{agent}__{seed}__{time}/
        config.json          the resolved :class:`TrainConfig` (everything eval needs, with model.zip)
        model.zip            the SB3 model zip (policy_kwargs hold the memory configuration)
        vecnormalize.pkl     observation / reward normalisation statistics, when normalize=True
        checkpoints/         model_{step}.zip (+ vecnormalize_{step}.pkl), each written atomically
        tb/                  TensorBoard events (SB3's ``tensorboard_log``)
        episodes.csv         step, return, length, success of every finished training episode
        versions.json        memagent, torch, stable-baselines3, gymnasium, numpy, python, device
        state.json           steps done and status ("running", "completed", "interrupted")

Every checkpoint goes through :func:`memagent.utils.atomic_write` (write a temporary file,
then rename), so a kill in the middle of a save leaves the previous checkpoint readable.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import platform
import re
import time
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memagent.utils import atomic_write

CONFIG_FILE = "config.json"
MODEL_FILE = "model.zip"
NORM_FILE = "vecnormalize.pkl"
EPISODES_FILE = "episodes.csv"
STATE_FILE = "state.json"
VERSIONS_FILE = "versions.json"
CHECKPOINT_DIR = "checkpoints"
EPISODE_FIELDS = ("step", "return", "length", "success")


@dataclass
class TrainConfig:
    """Everything that defines a training run. ``None`` fields are filled from the preset
    for (env_id, agent) in :mod:`memagent.agents.presets`; config.json holds the result."""

    env_id: str = "memagent/TMaze-v0"
    """gymnasium id of the environment (``memagent/...`` gridworlds or any registered id)."""
    agent: str = "memory-ppo"
    """agent name: ``memory-ppo``, ``ppo``, ``dqn`` or ``man`` (``memagent train --help``)."""
    memory: str | None = None
    """memory core for ``memory-ppo`` (lstm, gru, nmn, hopfield); ``None`` = the preset's."""
    total_timesteps: int | None = None
    """environment steps to train for, summed over parallel envs; ``None`` = the preset's."""
    n_envs: int | None = None
    """parallel environments; ``None`` = the preset's."""
    seed: int = 0
    """one seed for python, numpy, torch, the envs and their action spaces."""
    device: str = "auto"
    """``auto`` (CUDA when present), ``cpu`` or ``cuda[:i]``; the resolved one is in versions.json."""
    env_kwargs: dict = field(default_factory=dict)
    """keyword arguments for the env constructor (``length``, ``obs_mode``, ...)."""
    agent_kwargs: dict = field(default_factory=dict)
    """keyword arguments for the algorithm (``learning_rate``, ``n_steps``, ...); merged over the preset's."""
    memory_kwargs: dict = field(default_factory=dict)
    """keyword arguments for the memory (core sizes for memory-ppo, ``window`` for dqn's history)."""
    curriculum: list = field(default_factory=list)
    """``[length, steps]`` stages trained before the env itself, shortest delay first: each
    trains ``steps`` env steps on the env with ``length`` changed (``memagent train --curriculum
    10:40000,100:100000``; :mod:`memagent.curriculum`); ``[]`` = none."""
    normalize: bool = False
    """wrap the envs in SB3's ``VecNormalize``; its statistics are saved with every checkpoint."""
    checkpoint_every: int = 10_000
    """steps between checkpoints (rounded up to the algorithm's rollout); 0 = only at the end."""
    keep_checkpoints: int = 3
    """how many of the newest checkpoints to keep (older ones are deleted)."""


CONFIG_FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}


def _type_ok(value: Any, hint: Any) -> bool:
    """Whether ``value`` fits a simple annotation (int, float, str, bool, dict, ``X | None``)."""
    if hint is type(None):
        return value is None
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, h) for h in typing.get_args(hint))
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, origin or hint)


def _type_name(hint: Any) -> str:
    args = typing.get_args(hint)
    if args:
        return " or ".join(_type_name(a) for a in args)
    return "null" if hint is type(None) else getattr(hint, "__name__", str(hint))


def check_config_dict(values: dict, source: str) -> dict:
    """Reject unknown keys and wrong types in a user's config mapping, naming the key."""
    hints = typing.get_type_hints(TrainConfig)
    for key, value in values.items():
        if key not in CONFIG_FIELDS:
            raise ValueError(
                f"{source}: unknown key {key!r}; known keys: {', '.join(CONFIG_FIELDS)}"
            )
        if not _type_ok(value, hints[key]):
            raise ValueError(
                f"{source}: {key!r} must be {_type_name(hints[key])}, "
                f"got {type(value).__name__} {value!r}"
            )
    return values


def load_config_file(path: str | Path) -> dict:
    """Read a JSON (``.json``) or TOML (``.toml``) file of :class:`TrainConfig` keys."""
    path = Path(path)
    if not path.exists() or path.is_dir():
        raise FileNotFoundError(f"config file {str(path)!r} does not exist")
    text = path.read_text()
    try:
        if path.suffix == ".toml":
            import tomllib

            values = tomllib.loads(text)
        else:
            values = json.loads(text)
    except (ValueError, ImportError) as err:  # JSONDecodeError and TOMLDecodeError are ValueErrors
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ValueError(f"config file {str(path)!r} does not parse: {first}") from None
    if not isinstance(values, dict):
        raise ValueError(f"config file {str(path)!r} must hold a table/object of keys")
    return check_config_dict(values, f"config file {str(path)!r}")


def config_from_dict(values: dict, source: str = "config") -> TrainConfig:
    return TrainConfig(**check_config_dict(dict(values), source))


# --------------------------------------------------------------------------- run folders


def sanitize(name: str) -> str:
    """``memagent/TMaze-v0`` -> ``memagent-TMaze-v0`` (safe in a folder name)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-")


def new_run_dir(config: TrainConfig, root: str | Path = "runs") -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    name = f"{sanitize(config.env_id)}__{sanitize(config.agent)}__{config.seed}__{stamp}"
    path = Path(root) / name
    n = 1
    while path.exists():  # two runs started in the same second
        n += 1
        path = Path(root) / f"{name}-{n}"
    return path


def check_run_dir(path: str | Path, root: str | Path = "runs") -> Path:
    """The run folder at ``path``, or a one-line error saying why it is not one.

    ``"latest"`` names the run under ``root`` whose ``config.json`` was written last (the
    newest run), unless a folder called ``latest`` exists.
    """
    path = Path(path)
    if str(path) == "latest" and not path.exists():
        found = sorted(Path(root).glob(f"*/{CONFIG_FILE}"), key=lambda p: p.stat().st_mtime)
        if not found:
            raise FileNotFoundError(f"no runs in {str(root)!r} yet: run `memagent train` first")
        return found[-1].parent
    if not path.exists():
        raise FileNotFoundError(f"run folder {str(path)!r} does not exist")
    if not path.is_dir() or not (path / CONFIG_FILE).is_file():
        raise ValueError(
            f"{str(path)!r} is not a run folder (no {CONFIG_FILE}); "
            "pass a folder that `memagent train` wrote, e.g. runs/<name>"
        )
    return path


def read_config(run_dir: str | Path) -> TrainConfig:
    run_dir = check_run_dir(run_dir)
    values = json.loads((run_dir / CONFIG_FILE).read_text())
    return config_from_dict(values, f"{run_dir / CONFIG_FILE}")


def write_json(path: Path, data: dict) -> None:
    text = json.dumps(data, indent=2, sort_keys=False) + "\n"
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def read_state(run_dir: Path) -> dict:
    try:
        return json.loads((Path(run_dir) / STATE_FILE).read_text())
    except (OSError, ValueError):
        return {}


def write_state(run_dir: Path, **state) -> None:
    merged = {**read_state(run_dir), **state, "updated": time.strftime("%Y-%m-%dT%H:%M:%S")}
    write_json(Path(run_dir) / STATE_FILE, merged)


def versions(device: Any = None) -> dict:
    """Versions of what a run depends on, and the device it ran on."""
    import gymnasium
    import numpy
    import stable_baselines3
    import torch

    import memagent

    info = {
        "memagent": memagent.__version__,
        "torch": torch.__version__,
        "stable_baselines3": stable_baselines3.__version__,
        "gymnasium": gymnasium.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": str(device) if device is not None else None,
    }
    if device is not None and getattr(device, "type", "") == "cuda":
        info["cuda_device"] = torch.cuda.get_device_name(device)
    return info


# --------------------------------------------------------------------------- checkpoints


def checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    """``(step, path)`` of every complete checkpoint, oldest first.

    Temporary files of an interrupted write (``.model_*.tmp``) never match.
    """
    found = []
    for p in (Path(run_dir) / CHECKPOINT_DIR).glob("model_*.zip"):
        m = re.fullmatch(r"model_(\d+)\.zip", p.name)
        if m:
            found.append((int(m.group(1)), p))
    return sorted(found)


def save_checkpoint(model, run_dir: str | Path, step: int, keep: int = 3) -> Path:
    """Save ``model`` (and its VecNormalize statistics) as checkpoint ``step``, atomically.

    :param model: an SB3 model.
    :param run_dir: the run folder.
    :param step: the step count in the file name.
    :param keep: how many newest checkpoints to keep; older ones are deleted after the save.
    :return: the checkpoint's path.
    """
    ckpt_dir = Path(run_dir) / CHECKPOINT_DIR
    norm = model.get_vec_normalize_env()
    if norm is not None:  # the stats first: a model file never exists without its stats
        atomic_write(ckpt_dir / f"vecnormalize_{step}.pkl", norm.save)
    path = atomic_write(ckpt_dir / f"model_{step}.zip", model.save)
    for old_step, old in checkpoints(run_dir)[:-keep] if keep > 0 else []:
        old.unlink(missing_ok=True)
        (ckpt_dir / f"vecnormalize_{old_step}.pkl").unlink(missing_ok=True)
    return path


def save_final(model, run_dir: str | Path) -> None:
    """``model.zip`` (and ``vecnormalize.pkl``) at the top of the run folder, atomically."""
    run_dir = Path(run_dir)
    norm = model.get_vec_normalize_env()
    if norm is not None:
        atomic_write(run_dir / NORM_FILE, norm.save)
    atomic_write(run_dir / MODEL_FILE, model.save)
    write_state(run_dir, model_steps=int(model.num_timesteps))


def latest_model(run_dir: str | Path) -> tuple[Path, Path | None]:
    """The newest checkpoint that is a readable zip (or model.zip), and its normalisation file."""
    import zipfile

    run_dir = Path(run_dir)
    candidates = [(s, 1, p, p.parent / f"vecnormalize_{s}.pkl") for s, p in checkpoints(run_dir)]
    final = run_dir / MODEL_FILE
    if final.exists():  # model.zip's step is recorded by save_final; checkpoints win ties
        candidates.append((read_state(run_dir).get("model_steps", -1), 0, final, run_dir / NORM_FILE))
    for _step, _rank, path, norm in sorted(candidates, reverse=True):
        if zipfile.is_zipfile(path):
            return path, norm if norm.exists() else None
    raise ValueError(f"run folder {str(run_dir)!r} holds no readable model (model.zip or checkpoints/)")


# --------------------------------------------------------------------------- episodes.csv


class EpisodeLog:
    """Append finished episodes to ``episodes.csv`` and keep recent ones for the progress bar."""

    def __init__(self, run_dir: str | Path, window: int = 100):
        from collections import deque

        self.path = Path(run_dir) / EPISODES_FILE
        new = not self.path.exists() or self.path.stat().st_size == 0
        self._fh = open(self.path, "a", newline="")
        self._csv = csv.writer(self._fh)
        if new:
            self._csv.writerow(EPISODE_FIELDS)
            self._fh.flush()
        self.recent_success: deque = deque(maxlen=window)
        self.recent_return: deque = deque(maxlen=window)
        self.episodes = 0

    def add(self, step: int, ep_return: float, length: int, success: Any = None) -> None:
        self._csv.writerow([step, f"{ep_return:.6g}", length, "" if success is None else int(bool(success))])
        self.recent_return.append(float(ep_return))
        if success is not None:
            self.recent_success.append(float(bool(success)))
        self.episodes += 1

    def success_rate(self) -> float | None:
        return sum(self.recent_success) / len(self.recent_success) if self.recent_success else None

    def flush(self) -> None:
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


def read_episodes(run_dir: str | Path) -> list[dict]:
    path = Path(run_dir) / EPISODES_FILE
    if not path.exists():
        return []
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


# --------------------------------------------------------------------------- loading a run


def load_run(run_dir: str | Path, *, env_id: str | None = None, n_envs: int = 1,
             seed: int | None = None, render: bool = False, device: str = "cpu"):
    """Rebuild a run's env (wrappers and normalisation included) and load its newest model.

    :param run_dir: a folder ``memagent train`` wrote.
    :param env_id: evaluate on another env than the run's (same observation space).
    :param n_envs: parallel envs; ``render=True`` always uses one.
    :param seed: seed of the envs (default: the run's seed + 1000, unseen in training).
    :param render: one env with ``render_mode="rgb_array"`` and ``info["frame"]``.
    :param device: where the model runs.
    :return: ``(config, model, venv)``.
    """
    from memagent.agents import presets

    config = read_config(run_dir)
    presets.check_agent(config.agent)
    if env_id is not None:
        config = dataclasses.replace(config, env_id=presets.check_env(env_id))
    path, norm = latest_model(run_dir)
    seed = config.seed + 1000 if seed is None else seed
    venv = presets.make_venv(config, n_envs=n_envs, seed=seed, render=render)
    venv, _ = presets.wrap_venv(config, venv, norm_path=norm, training=False)
    try:
        model = presets.load_model(config, path, venv, device=device)
    except ValueError as err:  # SB3: observation/action space mismatch
        raise ValueError(f"{path} does not fit {config.env_id}: {str(err).splitlines()[0]}") from None
    return config, model, venv
