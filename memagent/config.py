"""What defines a training run (:class:`TrainConfig`), config files, and the presets as data.

A run's config is merged from four layers, later ones winning::

    agent default  <  env preset  <  user file (--config)  <  flags

The first two are YAML files shipped in the package, one per agent, keyed by env id as
rl-baselines3-zoo's ``hyperparams/*.yml`` (``memagent/hyperparams/{agent}.yml``; the key
``default`` holds the agent's defaults for any env). ``agent_kwargs``, ``memory_kwargs`` and
``env_kwargs`` merge key by key across layers; other keys replace. A user file is a flat
mapping of :class:`TrainConfig` keys in YAML (``.yml``/``.yaml``), TOML (``.toml``) or JSON.

Keys can be dotted to reach into the dict fields (``agent_kwargs.learning_rate``), as
``memagent sweep --grid`` and ``memagent tune --search`` do.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PRESET_DIR = Path(__file__).parent / "hyperparams"
DICT_FIELDS = ("agent_kwargs", "memory_kwargs", "env_kwargs")
#: what a run gets when neither the agent nor the env preset sets it
FALLBACK = {"total_timesteps": 100_000, "n_envs": 8}


@dataclass
class TrainConfig:
    """Everything that defines a training run. ``None`` fields are filled from the presets
    (:func:`resolve`); config.json holds the result."""

    env_id: str = "memagent/TMaze-v0"
    """gymnasium id of the environment (``memagent/...`` gridworlds or any registered id)."""
    agent: str = "memory-ppo"
    """agent name (``memagent train --help``), or any stable-baselines3 / sb3-contrib algorithm
    (``a2c``, ``qrdqn``) or ``module:Class`` of an SB3-style algorithm."""
    memory: str | None = None
    """memory of the agent: a registered core for ``memory-ppo`` (``memagent cores``), typeA or
    typeB for ``man``; ``None`` = the preset's."""
    total_timesteps: int | None = None
    """environment steps to train for, summed over parallel envs; ``None`` = the preset's."""
    n_envs: int | None = None
    """parallel environments; ``None`` = the preset's."""
    seed: int = 0
    """one seed for python, numpy, torch, the envs and their action spaces."""
    device: str = "auto"
    """``auto`` (CUDA when present), ``cpu`` or ``cuda[:i]``; the resolved one is in versions.json."""
    threads: int = 1
    """torch threads of the training process. These networks are small: on a shared CPU more
    threads mostly contend; a run's numbers can depend on the count."""
    env_kwargs: dict = field(default_factory=dict)
    """keyword arguments for the env constructor (``length``, ``obs_mode``, ...)."""
    agent_kwargs: dict = field(default_factory=dict)
    """keyword arguments for the algorithm (``learning_rate``, ``n_steps``, ...); merged over the preset's."""
    memory_kwargs: dict = field(default_factory=dict)
    """keyword arguments for the memory (core sizes for memory-ppo, ``window`` for dqn's history)."""
    curriculum: list = field(default_factory=list)
    """``[length, steps]`` stages trained before the env itself, shortest delay first
    (:mod:`memagent.curriculum`); ``[]`` = none."""
    normalize: bool = False
    """wrap the envs in SB3's ``VecNormalize``; its statistics are saved with every checkpoint."""
    checkpoint_every: int = 10_000
    """steps between checkpoints, at multiples of it (after whole rollouts); 0 = only at the end."""
    keep_checkpoints: int = 3
    """how many of the newest checkpoints to keep (older ones are deleted)."""
    eval_every: int = 0
    """steps between greedy evaluations of ``eval_episodes`` episodes (the learning curve in
    results.json); 0 = none."""
    eval_episodes: int = 0
    """fresh episodes of the final (and periodic) greedy evaluation, on envs seeded
    ``seed + 1000`` (as ``memagent eval``); 0 = no evaluation, no results.json."""


CONFIG_FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}


# --------------------------------------------------------------------------- checking values


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
    """Reject unknown keys and wrong types in a mapping of :class:`TrainConfig` keys.

    :param values: the mapping (not changed).
    :param source: what to name in the error, e.g. ``"config file 'a.yml'"``.
    :raises ValueError: the first unknown key or wrongly typed value, with the known keys.
    """
    hints = typing.get_type_hints(TrainConfig)
    for key, value in values.items():
        if key not in CONFIG_FIELDS:
            raise ValueError(f"{source}: unknown key {key!r}; known keys: {', '.join(CONFIG_FIELDS)}")
        if not _type_ok(value, hints[key]):
            raise ValueError(f"{source}: {key!r} must be {_type_name(hints[key])}, "
                             f"got {type(value).__name__} {value!r}")
    return values


def read_mapping(path: str | Path, what: str = "config file") -> dict:
    """A YAML, TOML or JSON file that holds one mapping, parsed (by suffix; JSON otherwise).

    :raises FileNotFoundError: no such file.
    :raises ValueError: it does not parse, or is not a mapping (one line, naming the file).
    """
    path = Path(path)
    if not path.exists() or path.is_dir():
        raise FileNotFoundError(f"{what} {str(path)!r} does not exist")
    text = path.read_text()
    try:
        if path.suffix == ".toml":
            import tomllib

            values = tomllib.loads(text)
        elif path.suffix in (".yml", ".yaml"):
            values = yaml_load(text)
        else:
            values = json.loads(text)
    except Exception as err:  # JSON, TOML and YAML errors: one line
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ValueError(f"{what} {str(path)!r} does not parse: {first}") from None
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise ValueError(f"{what} {str(path)!r} must hold a mapping of keys, got {type(values).__name__}")
    return values


def load_config_file(path: str | Path) -> dict:
    """Read a user's config file (``.yml``/``.yaml``, ``.toml`` or JSON) of :class:`TrainConfig` keys."""
    return check_config_dict(read_mapping(path), f"config file {str(path)!r}")


def config_from_dict(values: dict, source: str = "config") -> TrainConfig:
    return TrainConfig(**check_config_dict(dict(values), source))


# --------------------------------------------------------------------------- dotted keys


def split_key(key: str) -> list[str]:
    """``"agent_kwargs.learning_rate"`` -> ``["agent_kwargs", "learning_rate"]``, checked.

    :raises ValueError: the first part is no :class:`TrainConfig` field, or a dotted key
        reaches into a field that is not a dict.
    """
    parts = key.split(".")
    if parts[0] not in CONFIG_FIELDS or not all(parts):
        raise ValueError(f"unknown config key {key!r}; known keys: {', '.join(CONFIG_FIELDS)} "
                         "(dotted into agent_kwargs, memory_kwargs, env_kwargs: agent_kwargs.learning_rate)")
    if len(parts) > 1 and parts[0] not in DICT_FIELDS:
        raise ValueError(f"config key {key!r}: {parts[0]} is not a dict; only "
                         f"{', '.join(DICT_FIELDS)} take dotted keys")
    return parts


def set_dotted(values: dict, key: str, value: Any) -> dict:
    """Set ``key`` (possibly dotted) in the nested mapping ``values``, in place; returns it."""
    parts = split_key(key)
    node = values
    for part in parts[:-1]:
        child = node.get(part)
        node[part] = child = dict(child) if isinstance(child, dict) else {}
        node = child
    node[parts[-1]] = value
    return values


_LOADER = None


def yaml_load(text: str) -> Any:
    """``yaml.safe_load`` that reads ``3e-4`` as a float, as YAML 1.2 and JSON do (PyYAML's
    YAML 1.1 rules read it as a string)."""
    global _LOADER
    import re

    import yaml

    if _LOADER is None:
        class Loader(yaml.SafeLoader):
            pass

        Loader.add_implicit_resolver(
            "tag:yaml.org,2002:float",
            re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"), list("-+0123456789"))
        _LOADER = Loader
    return yaml.load(text, Loader=_LOADER)  # noqa: S506  (a SafeLoader subclass)


def parse_value(text: str) -> Any:
    """A command-line value as YAML reads it: ``3e-4`` a float, ``[64, 64]`` a list, ``null``
    None, ``lin_3e-4`` a string."""
    import yaml

    try:
        value = yaml_load(text)
    except yaml.YAMLError:
        return text
    if isinstance(value, str) and value != text.strip():
        return text
    return value


# --------------------------------------------------------------------------- presets


def merge(base: dict, over: dict) -> dict:
    """``over`` on ``base``: the dict fields (:data:`DICT_FIELDS`) merge key by key, one level
    deep (a nested ``policy_kwargs`` replaces the one below it); other keys replace."""
    out = dict(base)
    for key, value in over.items():
        if key in DICT_FIELDS and isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out


def preset_file(agent: str) -> Path:
    """``memagent/hyperparams/{agent}.yml`` (it need not exist)."""
    from memagent.runs import sanitize

    return PRESET_DIR / f"{sanitize(agent)}.yml"


def load_presets(agent: str) -> dict[str, dict]:
    """The agent's preset file: ``{"default": {...}, env_id: {...}, ...}`` (``{}`` if none).

    :raises ValueError: a key or a type in the file is wrong (naming the file and the env).
    """
    path = preset_file(agent)
    if not path.is_file():
        return {}
    table = read_mapping(path, "preset file")
    for env_id, values in table.items():
        if not isinstance(values, dict):
            raise ValueError(f"preset file {str(path)!r}: {env_id!r} must map config keys, got {values!r}")
        check_config_dict(values, f"preset file {str(path)!r} [{env_id}]")
    return table


def preset_for(agent: str, env_id: str) -> dict:
    """The agent's defaults with its preset for ``env_id`` on top (the two lowest layers)."""
    table = load_presets(agent)
    return merge(table.get("default", {}), table.get(env_id, {}))


def resolve(config: TrainConfig, given: set[str]) -> TrainConfig:
    """Fill the fields of ``config`` the user did not give from the agent's presets, then
    let the agent check the result (:meth:`memagent.agent.Agent.check_config`).

    :param config: a :class:`TrainConfig` holding the user's values.
    :param given: names of the fields the user set (config file or flags).
    :return: a new config with every preset value in place.
    :raises ValueError: a value the agent or the env cannot take (one line: what and the fix).
    """
    from memagent.agent import get_agent

    cls = get_agent(config.agent)
    preset = merge(FALLBACK, preset_for(config.agent, config.env_id))
    updates = {}
    for key, value in preset.items():
        if key in DICT_FIELDS:
            updates[key] = {**value, **getattr(config, key)}
        elif key not in given or getattr(config, key) is None:
            updates[key] = value
    config = dataclasses.replace(config, **updates)
    if config.total_timesteps is None or config.total_timesteps < 1:
        raise ValueError(f"total_timesteps (--steps) must be >= 1, got {config.total_timesteps}")
    if config.n_envs is None or config.n_envs < 1:
        raise ValueError(f"n_envs (--n-envs) must be >= 1, got {config.n_envs}")
    for key in ("threads",):
        if getattr(config, key) < 1:
            raise ValueError(f"{key} (--{key}) must be >= 1, got {getattr(config, key)}")
    for key in ("eval_every", "eval_episodes", "checkpoint_every"):
        if getattr(config, key) < 0:
            raise ValueError(f"{key} must be >= 0, got {getattr(config, key)}")
    cls.check_config(config, given)
    return config


def build_config(values: dict, source: str = "config") -> TrainConfig:
    """A resolved config from the user's ``values`` (file and flags merged; dotted keys allowed).

    Checks the env and the agent exist, fills the agent's default env when ``env_id`` is
    not given, then :func:`resolve`.
    """
    from memagent.agent import check_env, get_agent

    nested: dict = {}
    for key, value in values.items():
        set_dotted(nested, key, value) if "." in key else nested.__setitem__(key, value)
    check_config_dict(nested, source)
    cls = get_agent(nested.get("agent", TrainConfig.agent))
    if "env_id" not in nested:
        nested["env_id"] = cls.default_env
    check_env(nested["env_id"])
    return resolve(TrainConfig(**nested), set(nested))


def to_dict(config: TrainConfig) -> dict:
    return dataclasses.asdict(config)
