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
        state.json           steps done and status ("running", "completed", "interrupted", "failed")
        evaluations.csv      greedy evaluations during training (eval_every; :mod:`memagent.experiment`)
        results.json         final greedy success / return, learning curve, steps/s (eval_episodes)

Every checkpoint goes through :func:`memagent.utils.atomic_write` (write a temporary file,
then rename), so a kill in the middle of a save leaves the previous checkpoint readable.
"""

from __future__ import annotations

import csv
import json
import platform
import re
import time
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


from memagent.config import (  # noqa: E402,F401  (re-exported: where run folders' configs come from)
    CONFIG_FIELDS,
    TrainConfig,
    check_config_dict,
    config_from_dict,
    load_config_file,
)

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
    newest run), skipping runs marked ``failed``, unless a folder called ``latest`` exists.
    """
    path = Path(path)
    if str(path) == "latest" and not path.exists():
        found = sorted(Path(root).glob(f"*/{CONFIG_FILE}"), key=lambda p: p.stat().st_mtime)
        found = [p for p in found if read_state(p.parent).get("status") != "failed"]
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

    def mean_return(self) -> float | None:
        return sum(self.recent_return) / len(self.recent_return) if self.recent_return else None

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
