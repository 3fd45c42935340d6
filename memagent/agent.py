"""The one interface every agent offers the commands, and the registry of agents.

Commands (``train``, ``eval``, ``render``, ``sweep``, ``tune``) hold an :class:`Agent` and
never name one. An adapter is a subclass registered with :func:`register_agent`:

- :mod:`memagent.agents.sb3_adapter`: ``memory-ppo``, ``ppo``, ``dqn``, and any SB3-style
  algorithm a user names (``--agent a2c``, ``--agent sb3_contrib:QRDQN``, ``module:Class``);
- :mod:`memagent.agents.man_adapter`: ``man``, the Memory Association Network agent.

Where adapters come from, on the first lookup: every module of :mod:`memagent.agents` whose
source contains ``@register_agent(``, and installed packages' entry points in the group
``memagent.agents``. Hyperparameters live apart, as data (:mod:`memagent.config`).

The life of an agent in a run::

    agent = get_agent(config.agent)(config, device)
    agent.build(run_dir)                       # env(s) and model
    agent.learn(steps, callbacks=[...])        # LearnCallback: on_start / on_step / on_end
    agent.evaluate(100, seed=config.seed + 1000)
    agent.save(run_dir)                        # load(config, run_dir) gives it back
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import numpy as np


class Episodes(NamedTuple):
    """What :meth:`Agent.evaluate` played: one entry per episode."""

    returns: list[float]
    lengths: list[int]
    successes: list[bool | None]
    """``info["is_success"]`` at each episode's end; ``None`` where the env gives none."""

    def success_rate(self) -> float | None:
        known = [s for s in self.successes if s is not None]
        return float(np.mean(known)) if known else None

    def mean_return(self) -> float:
        return float(np.mean(self.returns)) if self.returns else float("nan")


class ScreenView(NamedTuple):
    """A picture among an agent's views (:meth:`Agent.frame_views`): drawn as it is, at the
    frame's scale, beside the env's screen and labelled with its key (e.g. the MAN agent's
    ``"reconstruction"`` and ``"imagined"`` screens)."""

    image: np.ndarray
    """(H, W, 3) uint8."""


class LearnCallback:
    """Hooks :meth:`Agent.learn` calls; override what you need.

    ``on_step`` runs after every environment step (of all parallel envs at once) with that
    step's ``infos`` (SB3's: an ``"episode"`` entry where an episode ended); returning False
    stops training after the step.
    """

    def on_start(self, agent: Agent) -> None:
        pass

    def on_step(self, agent: Agent, infos: Sequence[dict]) -> bool:
        return True

    def on_end(self, agent: Agent) -> None:
        pass


class Agent:
    """An agent as the commands see it.

    :param config: the resolved :class:`memagent.config.TrainConfig` of the run.
    :param device: a resolved ``torch.device`` (or its name).
    """

    name: ClassVar[str] = ""
    """set by :func:`register_agent`."""
    description: ClassVar[str] = ""
    """one line for ``memagent train --help`` and error messages."""
    default_env: ClassVar[str] = "memagent/TMaze-v0"
    """the env of ``memagent train --agent NAME`` without ``--env``."""
    can_resume: ClassVar[bool] = True
    """whether ``learn`` can go on from a checkpoint (``memagent train --resume``)."""
    verbose: int = 0
    """1: print what training does between progress updates (curriculum stages, phases)."""
    render_kind: ClassVar[str] = "episodes"
    """``"episodes"``: ``render`` plays episodes with :meth:`act` and draws
    :meth:`memory_views` and :meth:`frame_views` beside each frame; ``"figure"``: :meth:`draw`
    writes one picture; ``"both"``: a ``FILE.png`` is drawn, any other ``--out`` played
    (:meth:`render_kind_for`)."""

    def __init__(self, config, device: Any = "cpu"):
        self.config = config
        self.device = device

    # -- configuration -------------------------------------------------------------------
    @classmethod
    def check_config(cls, config, given: set[str]) -> None:
        """Raise ``ValueError`` for a config this agent cannot run (after the presets merged).

        :param config: the merged config.
        :param given: the keys the user set (not from a preset).
        """

    @classmethod
    def render_kind_for(cls, out: str | Path) -> str:
        """``"episodes"`` or ``"figure"``: what ``memagent render --out OUT`` does with this
        agent (:attr:`render_kind`; ``"both"`` draws a ``.png`` and plays anything else)."""
        if cls.render_kind == "both":
            return "figure" if str(out).lower().endswith(".png") else "episodes"
        return cls.render_kind

    @classmethod
    def memory_choices(cls) -> list[str]:
        """What ``memory`` may name for this agent (``[]``: it takes none)."""
        return []

    # -- life cycle ----------------------------------------------------------------------
    def build(self, run_dir: Path | None = None) -> None:
        """Make the training env(s) and a fresh model (TensorBoard under ``run_dir/tb``)."""
        raise NotImplementedError

    def learn(self, total_timesteps: int, callbacks: Sequence[LearnCallback] = (),
              reset: bool = True) -> None:
        """Train ``total_timesteps`` more env steps, calling ``callbacks``.

        :param reset: start the step count at 0 (False: go on from a loaded checkpoint).
        """
        raise NotImplementedError

    @property
    def num_timesteps(self) -> int:
        """Env steps trained so far."""
        raise NotImplementedError

    def n_params(self) -> int:
        """Trainable parameters of the model."""
        return 0

    def act(self, obs, state=None, episode_start=None, deterministic: bool = True):
        """Actions for one step and the state to pass back next step: ``(actions, state)``."""
        raise NotImplementedError

    def evaluate(self, n_episodes: int, seed: int, deterministic: bool = True,
                 env_id: str | None = None, n_envs: int | None = None) -> Episodes:
        """Play ``n_episodes`` fresh episodes on envs seeded ``seed`` (memory carried).

        :param env_id: another env with the same observations (default: the run's).
        :param n_envs: parallel envs (default ``min(n_episodes, 8)``).
        """
        raise NotImplementedError

    def log(self, message: str) -> None:
        """A progress message of a training phase; the experiment replaces this to print it."""

    def progress(self, phase: str, done: int, total: int, **metrics: float) -> bool:
        """Progress inside a long training phase that is not env steps (those reach the
        callbacks): ``done`` of ``total`` steps of ``phase``, e.g. ``("training the long-term
        memory", 500, 3000, loss=2410.3)``. ``memagent train`` and ``memagent imagine``
        replace this with a :class:`memagent.progress.PhaseProgress` (a bar, or lines with
        ``--no-progress``). Returns False when training should stop (Ctrl-C)."""
        return True

    def summary(self) -> str:
        """A few words on the trained agent for ``memagent eval``'s header."""
        return f"steps trained {self.num_timesteps:,}"

    # -- persistence ---------------------------------------------------------------------
    def save(self, run_dir: Path) -> None:
        """Write the final model into the run folder (what :meth:`load` reads)."""
        raise NotImplementedError

    def save_checkpoint(self, run_dir: Path, step: int, keep: int) -> None:
        """Write checkpoint ``step`` atomically, keep the newest ``keep`` (no-op if it cannot resume)."""

    @classmethod
    def load(cls, config, run_dir: Path, device: Any = "cpu", training: bool = False) -> Agent:
        """The agent saved in ``run_dir``; ``training=True`` also rebuilds the training env."""
        raise NotImplementedError

    # -- rendering -----------------------------------------------------------------------
    def make_env(self, n_envs: int = 1, seed: int | None = None, render: bool = False,
                 env_id: str | None = None):
        """An evaluation VecEnv as :meth:`act` expects it (``render``: frames in ``info["frame"]``)."""
        raise NotImplementedError

    def memory_views(self) -> dict[str, np.ndarray]:
        """What the memory read at the last :meth:`act` (e.g. ``attention``), for rendering:
        arrays, drawn as heatmaps (2-D) or bars (1-D) in a panel right of the frame."""
        return {}

    def frame_views(self, frame: np.ndarray, info: dict) -> dict[str, ScreenView | str]:
        """What the memory makes of the frame ``render`` shows (called for every frame, the
        first of each episode included, with the env's ``info`` of that step): a
        :class:`ScreenView` is drawn beside the frame under its key as a label, a ``str`` is
        a line of text below it. Default: nothing."""
        return {}

    def carry_info(self, state, info: dict):
        """The state :meth:`act` gets next, once the env returned ``info`` with the new
        observation (``render`` calls it after every step and reset). Default ``state``
        unchanged (a recurrent state); the MAN agent returns ``info``, whose ``state_id`` its
        behaviour policy reads."""
        return state

    def draw(self, out: Path, seed: int, env_id: str | None = None) -> str:
        """Write the agent's picture to ``out`` (``render_kind == "figure"``); returns a summary."""
        raise NotImplementedError


def memory_views(module) -> dict[str, np.ndarray]:
    """Everything ``module``'s submodules report through ``inspect()`` after the last forward
    (the :class:`memagent.memory.core.MemoryCore` contract: a dict of numpy arrays)."""
    views: dict[str, np.ndarray] = {}
    for sub in module.modules():
        inspect = getattr(sub, "inspect", None)
        if callable(inspect):
            try:
                found = inspect() or {}
            except Exception:  # a core that has not run yet
                continue
            for key, value in found.items():
                views.setdefault(key, np.asarray(value, dtype=float))
    return views


# --------------------------------------------------------------------------- the registry

_AGENTS: dict[str, type[Agent]] = {}
_discovered = False


def register_agent(name: str, description: str = ""):
    """Class decorator: register an :class:`Agent` subclass as ``name``.

    :raises ValueError: ``name`` is taken by another class.
    """

    def decorate(cls):
        old = _AGENTS.get(name)
        if old is not None and old.__qualname__ != cls.__qualname__:
            raise ValueError(f"agent {name!r} is already registered by {old.__module__}.{old.__qualname__}")
        cls.name = name
        if description:
            cls.description = description
        _AGENTS[name] = cls
        return cls

    return decorate


def _discover() -> None:
    global _discovered
    if _discovered:
        return
    _discovered = True
    import memagent.agents as package

    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        spec = importlib.util.find_spec(f"{package.__name__}.{info.name}")
        try:
            with open(spec.origin, encoding="utf-8") as fh:
                registers = "@register_agent(" in fh.read()
        except (OSError, TypeError, AttributeError):
            continue
        if registers:
            importlib.import_module(f"{package.__name__}.{info.name}")
    from importlib.metadata import entry_points

    for ep in entry_points(group="memagent.agents"):
        importlib.import_module(ep.value.split(":")[0])


def agent_names() -> list[str]:
    """The registered agents, in registration order."""
    _discover()
    return list(_AGENTS)


def get_agent(name: str) -> type[Agent]:
    """The adapter class of ``name``: a registered agent, else any SB3-style algorithm
    (:func:`memagent.agents.sb3_adapter.algorithm_agent`).

    :raises ValueError: nothing of that name; the message lists the registered agents.
    """
    _discover()
    if name in _AGENTS:
        return _AGENTS[name]
    from memagent.agents.sb3_adapter import algorithm_agent

    cls = algorithm_agent(name)
    if cls is None:
        raise ValueError(f"unknown agent {name!r}; known agents: {', '.join(_AGENTS)}, or any "
                         "stable-baselines3 / sb3-contrib algorithm (a2c, sac, qrdqn, ...) or module:Class")
    return cls


def check_env(env_id: str) -> str:
    """``env_id`` if gymnasium knows it (``import memagent`` registers ours), else an error."""
    import gymnasium as gym

    import memagent  # noqa: F401  (registers memagent/...)

    if env_id not in gym.envs.registry:
        ours = sorted(k for k in gym.envs.registry if k.startswith("memagent/"))
        raise ValueError(f"unknown env {env_id!r}; known memagent envs: {', '.join(ours) or '(none)'}"
                         " (or any gymnasium id, e.g. CartPole-v1)")
    return env_id


def load_agent(run_dir: str | Path, *, env_id: str | None = None, device: Any = "cpu",
               training: bool = False) -> Agent:
    """The agent of a run folder, ready to act (its newest model, its normalisation).

    :param env_id: act on another env (same observation space) than the run's.
    :raises ValueError: the folder holds no readable model, or the model does not fit the env.
    """
    import dataclasses

    from memagent.runs import check_run_dir, read_config

    run_dir = check_run_dir(run_dir)
    config = read_config(run_dir)
    if env_id is not None:
        config = dataclasses.replace(config, env_id=check_env(env_id))
    return get_agent(config.agent).load(config, run_dir, device=device, training=training)
