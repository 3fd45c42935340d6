"""The SB3 adapter: stable-baselines3-style algorithms behind :class:`memagent.agent.Agent`.

===============  =============================================================================
agent            what it is
===============  =============================================================================
``memory-ppo``   :class:`memagent.agents.memory_ppo.MemoryPPO`: PPO whose policy carries a
                 registered memory core (``--memory``, ``memagent cores``)
``ppo``          stable-baselines3 PPO with an MLP (or CNN for pixels): no memory, the baseline
``dqn``          stable-baselines3 DQN on an observation history read by a Hopfield extractor
                 (:func:`memagent.history.with_memory`): the memory path for any SB3 algorithm
any other        ``--agent a2c`` (any algorithm class of stable_baselines3 or sb3_contrib, by
                 name) or ``--agent module:Class`` (an SB3 ``BaseAlgorithm`` subclass)
===============  =============================================================================

The envs: ``memagent/...`` ids on the batched engine (:func:`memagent.envs.make_vec`), others
through SB3's ``make_vec_env``; then the agent's wrappers (dqn's history), then
``VecNormalize`` when ``normalize``. ``agent_kwargs`` go to the algorithm's constructor, with
rl-zoo's ``"lin_X"`` strings as linear schedules from X to 0.
"""

from __future__ import annotations

import copy
import importlib
import inspect
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from memagent.agent import Agent, Episodes, LearnCallback, register_agent

# --------------------------------------------------------------------------- envs


def make_venv(config, n_envs: int | None = None, seed: int | None = None, render: bool = False,
              device=None):
    """The vectorised env of a run, before any agent-specific wrapper.

    ``render=True`` gives one env with ``render_mode="rgb_array"`` whose ``info["frame"]``
    holds the screen after every step, the last of an episode included. ``device``: a
    gridworld's engine on that torch device (``make_vec(..., device=)``); others ignore it.
    """
    n = n_envs or config.n_envs
    seed = config.seed if seed is None else seed
    kwargs = dict(config.env_kwargs)
    try:
        if render:
            import gymnasium as gym
            from stable_baselines3.common.vec_env import DummyVecEnv

            venv = DummyVecEnv([lambda: FrameInfo(gym.make(config.env_id, render_mode="rgb_array", **kwargs))])
            venv.seed(seed)
            return venv
        from memagent.envs import ENVS, make_vec

        if config.env_id in ENVS:  # the gridworlds: one batched engine
            return make_vec(config.env_id, n, seed=seed, device=device, **kwargs)
        from stable_baselines3.common.env_util import make_vec_env

        return make_vec_env(config.env_id, n_envs=n, seed=seed, env_kwargs=kwargs)
    except TypeError as err:  # a misspelt key in env_kwargs
        raise ValueError(f"{config.env_id}: {err} (check env_kwargs in the config file)") from None


def _frame_info_class():
    import gymnasium as gym

    class FrameInfo(gym.Wrapper):
        """Put the screen after every step into ``info["frame"]`` (before any autoreset)."""

        def reset(self, **kwargs):
            obs, info = self.env.reset(**kwargs)
            info["frame"] = self.env.render()
            return obs, info

        def step(self, action):
            obs, reward, terminated, truncated, info = self.env.step(action)
            info["frame"] = self.env.render()
            return obs, reward, terminated, truncated, info

    return FrameInfo


def FrameInfo(env):  # noqa: N802  (a class made lazily so gymnasium is imported on use)
    return _frame_info_class()(env)


# --------------------------------------------------------------------------- schedules


class _Linear:
    """``progress_remaining * start`` (SB3 schedules get progress_remaining from 1 to 0)."""

    def __init__(self, start: float):
        self.start = start

    def __call__(self, progress_remaining: float) -> float:
        return progress_remaining * self.start

    def __repr__(self) -> str:
        return f"lin_{self.start:g}"


def algo_kwargs(agent_kwargs: dict) -> dict:
    """``agent_kwargs`` with rl-zoo's ``"lin_X"`` strings turned into linear schedules X -> 0.

    :raises ValueError: ``lin_`` not followed by a number.
    """
    out = dict(agent_kwargs)
    for key, value in agent_kwargs.items():
        if isinstance(value, str) and value.startswith("lin_"):
            try:
                out[key] = _Linear(float(value[4:]))
            except ValueError:
                raise ValueError(f"agent_kwargs {key}={value!r}: lin_ must be followed by a "
                                 "number, e.g. 'lin_3e-4'") from None
    return out


# --------------------------------------------------------------------------- the adapter


class _Bridge:
    """SB3's ``BaseCallback`` calling :class:`LearnCallback` s (made lazily: SB3 imports torch)."""

    @staticmethod
    def make(agent: SB3Agent, callbacks: Sequence[LearnCallback]):
        from stable_baselines3.common.callbacks import BaseCallback

        class Bridge(BaseCallback):
            def _on_training_start(self) -> None:
                for cb in callbacks:
                    cb.on_start(agent)

            def _on_step(self) -> bool:
                infos = self.locals.get("infos", ())
                go = True
                for cb in callbacks:
                    go = cb.on_step(agent, infos) is not False and go
                return go

            def _on_training_end(self) -> None:
                for cb in callbacks:
                    cb.on_end(agent)

        return Bridge()


class SB3Agent(Agent):
    """Any stable-baselines3-style algorithm (``algorithm = "module:Class"``)."""

    algorithm: str = "stable_baselines3:PPO"
    takes_memory_kwargs = False

    def __init__(self, config, device: Any = "cpu"):
        super().__init__(config, device)
        self.model = None
        self.venv = None

    @classmethod
    def model_class(cls):
        module, name = cls.algorithm.split(":")
        return getattr(importlib.import_module(module), name)

    # -- configuration -------------------------------------------------------------------
    @classmethod
    def check_config(cls, config, given: set[str]) -> None:
        if config.memory is not None and "memory" in given and not cls.memory_choices():
            raise ValueError(f"--memory only applies to the memory-ppo and man agents, not {config.agent!r}")
        if config.memory_kwargs and not cls.takes_memory_kwargs:
            raise ValueError(f"memory_kwargs only apply to memory-ppo, dqn and man, not {config.agent!r}")
        algo = cls.model_class()
        params = inspect.signature(algo.__init__).parameters
        if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
            known = [k for k in params if k not in ("self", "policy", "env")]
            unknown = sorted(set(config.agent_kwargs) - set(known))
            if unknown:
                raise ValueError(f"agent_kwargs for {config.agent}: unknown {', '.join(map(repr, unknown))} "
                                 f"({algo.__name__} takes: {', '.join(known)})")
        algo_kwargs(config.agent_kwargs)
        if config.curriculum:
            _check_curriculum(config)

    # -- envs ----------------------------------------------------------------------------
    def wrap(self, venv):
        """Agent wrappers on the raw VecEnv; returns ``(venv, policy_kwargs)``."""
        return venv, {}

    def _normalize(self, venv, training: bool):
        """SB3's ``VecNormalize``: rewards always; observations where running statistics mean
        something, a non-image ``Box`` or the non-image ``Box`` entries of a ``Dict`` (tile ids,
        ``Discrete``/``MultiDiscrete``/``MultiBinary`` codes and images pass as they are, which
        ``VecNormalize`` would otherwise refuse)."""
        from stable_baselines3.common.vec_env import VecNormalize

        if not training:
            return venv
        keys = _normalizable_keys(venv.observation_space)
        if keys is None:  # not a Dict
            return VecNormalize(venv, norm_obs=_is_float_box(venv.observation_space))
        return VecNormalize(venv, norm_obs=bool(keys), norm_obs_keys=keys or None)

    def make_env(self, n_envs: int = 1, seed: int | None = None, render: bool = False,
                 env_id: str | None = None):
        config = self.config if env_id is None else replace(self.config, env_id=env_id)
        venv, _ = self.wrap(make_venv(config, n_envs=n_envs, seed=seed, render=render))
        norm = self.model.get_vec_normalize_env() if self.model is not None else getattr(self, "_norm", None)
        if norm is not None:
            from stable_baselines3.common.vec_env import VecNormalize

            ev = VecNormalize(venv, training=False, norm_obs=norm.norm_obs, norm_reward=False,
                              clip_obs=norm.clip_obs, gamma=norm.gamma, epsilon=norm.epsilon,
                              norm_obs_keys=norm.norm_obs_keys if norm.norm_obs else None)
            if norm.norm_obs:  # without it VecNormalize keeps no observation statistics
                ev.obs_rms = copy.deepcopy(norm.obs_rms)
            ev.ret_rms = copy.deepcopy(norm.ret_rms)
            venv = ev
        return venv

    def _train_env(self, norm_path=None):
        venv, policy_kwargs = self.wrap(make_venv(self.config))
        if norm_path is not None:
            from stable_baselines3.common.vec_env import VecNormalize

            venv = VecNormalize.load(str(norm_path), venv)
            venv.training = True
        elif self.config.normalize:
            venv = self._normalize(venv, training=True)
        return venv, policy_kwargs

    def _policy_for(self, venv) -> str:
        """``CnnPolicy`` for images, else ``MlpPolicy``, or the algorithm's own names for them
        (sb3-contrib's RecurrentPPO: ``CnnLstmPolicy`` / ``MlpLstmPolicy``)."""
        from stable_baselines3.common.preprocessing import is_image_space

        kind = "Cnn" if is_image_space(venv.observation_space) else "Mlp"
        aliases = getattr(self.model_class(), "policy_aliases", {})
        if f"{kind}Policy" in aliases or not aliases:
            return f"{kind}Policy"
        return next((name for name in aliases if name.startswith(kind)), f"{kind}Policy")

    def policy_kwargs(self, wrapper_kwargs: dict) -> dict:
        """The algorithm's ``policy_kwargs``: the wrapper's, under the user's. A
        ``MultiDiscrete`` observation (the symbolic gridworlds) gets SB3's one-hot flatten with
        an ``int`` width (:class:`memagent.policies.CategoricalFlattenExtractor`; torch's LSTM,
        in RecurrentPPO, rejects the numpy integer SB3 computes) unless the user names one."""
        user = self.config.agent_kwargs.get("policy_kwargs", {})
        kwargs = {**wrapper_kwargs, **user}
        space = getattr(self, "venv", None) and self.venv.observation_space
        from gymnasium import spaces

        if (isinstance(space, spaces.MultiDiscrete) and "features_extractor_class" not in kwargs
                and self.config.agent != "memory-ppo"):
            from memagent.policies import CategoricalFlattenExtractor

            kwargs["features_extractor_class"] = CategoricalFlattenExtractor
        return kwargs

    # -- life cycle ----------------------------------------------------------------------
    def build(self, run_dir: Path | None = None) -> None:
        self.venv, wrapper_kwargs = self._train_env()
        kwargs = algo_kwargs(self.config.agent_kwargs)
        pk = self.policy_kwargs(wrapper_kwargs)
        if pk:
            kwargs["policy_kwargs"] = pk
        cls = self.model_class()
        try:
            self.model = cls(self._policy_for(self.venv), self.venv, **kwargs, seed=self.config.seed,
                             device=self.device, verbose=0,
                             tensorboard_log=None if run_dir is None else str(Path(run_dir) / "tb"))
        except (TypeError, AssertionError) as err:  # misspelt kwargs; SB3's unsupported spaces
            first = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise ValueError(f"{self.config.agent} on {self.config.env_id}: {first} (check "
                             "agent_kwargs and memory_kwargs, or pick an agent for this env)") from None

    def learn(self, total_timesteps: int, callbacks: Sequence[LearnCallback] = (),
              reset: bool = True) -> None:
        from stable_baselines3.common.callbacks import CallbackList

        bridge = _Bridge.make(self, callbacks)
        curriculum = self._curriculum_callback()
        self.model.learn(total_timesteps, callback=bridge if curriculum is None else CallbackList([curriculum, bridge]),
                         reset_num_timesteps=reset, tb_log_name="tb", progress_bar=False)

    def _curriculum_callback(self):
        if not self.config.curriculum:
            return None
        from memagent.curriculum import CurriculumCallback, check_curriculum

        config = self.config

        def maker(i: int, length: int):
            stage = replace(config, env_kwargs={**config.env_kwargs, "length": length})
            return lambda: self.wrap(make_venv(stage, seed=config.seed + 1000 * (i + 1)))[0]

        stages = [(steps, maker(i, length))
                  for i, (length, steps) in enumerate(check_curriculum(config.curriculum))]
        return CurriculumCallback(stages, verbose=self.verbose)

    @property
    def num_timesteps(self) -> int:
        return int(self.model.num_timesteps)

    def n_params(self) -> int:
        return sum(p.numel() for p in self.model.policy.parameters())

    def act(self, obs, state=None, episode_start=None, deterministic: bool = True):
        return self.model.predict(obs, state=state, episode_start=episode_start, deterministic=deterministic)

    def evaluate(self, n_episodes: int, seed: int, deterministic: bool = True,
                 env_id: str | None = None, n_envs: int | None = None) -> Episodes:
        from memagent.evaluation import run_episodes

        venv = self.make_env(n_envs or min(n_episodes, 8), seed=seed, env_id=env_id)
        try:
            return Episodes(*run_episodes(self.model, venv, n_episodes, deterministic))
        finally:
            venv.close()

    def memory_views(self):
        from memagent.agent import memory_views

        return memory_views(self.model.policy)

    # -- persistence ---------------------------------------------------------------------
    def save(self, run_dir: Path) -> None:
        from memagent import runs

        runs.save_final(self.model, run_dir)

    def save_checkpoint(self, run_dir: Path, step: int, keep: int) -> None:
        from memagent import runs

        runs.save_checkpoint(self.model, run_dir, step, keep=keep)

    @classmethod
    def load(cls, config, run_dir: Path, device: Any = "cpu", training: bool = False) -> SB3Agent:
        from memagent import runs

        agent = cls(config, device)
        path, norm = runs.latest_model(run_dir)
        if training:
            venv, _ = agent._train_env(norm_path=norm)
        else:
            if norm is not None:
                from stable_baselines3.common.vec_env import VecNormalize

                agent._norm = VecNormalize.load(str(norm), agent.wrap(make_venv(config, n_envs=1))[0])
            venv = agent.make_env(1)
        try:
            agent.model = cls.model_class().load(str(path), env=venv, device=device)
        except ValueError as err:  # SB3: observation/action space mismatch
            raise ValueError(f"{path} does not fit {config.env_id}: {str(err).splitlines()[0]}") from None
        agent.venv, agent.loaded_from = venv, path
        if training:
            agent.model.tensorboard_log = str(Path(run_dir) / "tb")
        return agent


def _check_curriculum(config) -> None:
    """Errors for a ``curriculum`` this run cannot follow (see :mod:`memagent.curriculum`)."""
    from memagent.curriculum import check_curriculum

    stages = check_curriculum(config.curriculum)
    if config.normalize:
        raise ValueError("--curriculum cannot be combined with normalize: each stage's env would "
                         "need its own VecNormalize statistics; drop one of them")
    if not config.env_id.startswith("memagent/"):
        raise ValueError(f"--curriculum changes a memagent world's length; {config.env_id} is not "
                         "a memagent env (use memagent/TMaze-L1000-v0 or another T-maze)")
    from memagent.envs import _env_class

    _, env_cls = _env_class(config.env_id)
    if "length" not in inspect.signature(env_cls.engine_cls.__init__).parameters:
        raise ValueError(f"--curriculum changes the world's length, but {config.env_id} has no "
                         "length argument; use a T-maze (memagent/TMaze-...)")
    used = sum(steps for _, steps in stages)
    if used >= config.total_timesteps:
        raise ValueError(f"the curriculum stages take {used:,} steps, which leaves none of "
                         f"total_timesteps (--steps) {config.total_timesteps:,} for "
                         f"{config.env_id} itself; pass --steps above {used:,}")


# --------------------------------------------------------------------------- the agents


@register_agent("memory-ppo", "PPO with a memory core in the policy (--memory CORE; memagent cores lists them)")
class MemoryPPOAgent(SB3Agent):
    algorithm = "memagent.agents.memory_ppo:MemoryPPO"
    takes_memory_kwargs = True

    @classmethod
    def memory_choices(cls) -> list[str]:
        from memagent.memory.core import core_names

        return core_names()

    @classmethod
    def check_config(cls, config, given: set[str]) -> None:
        from memagent.memory.core import check_memory_kwargs

        if config.memory is None:
            raise ValueError("memory-ppo needs a memory core: pass --memory CORE "
                             f"({', '.join(cls.memory_choices())})")
        check_memory_kwargs(config.memory, config.memory_kwargs)
        super().check_config(config, given)

    def policy_kwargs(self, wrapper_kwargs: dict) -> dict:
        return {"memory": self.config.memory, "memory_kwargs": dict(self.config.memory_kwargs),
                **super().policy_kwargs(wrapper_kwargs)}

    def _train_env(self, norm_path=None):
        """On CUDA a gridworld's training envs live on the GPU too (the rollout never visits
        the host); on the CPU, and with ``normalize`` (VecNormalize is numpy), numpy envs."""
        device = getattr(self.device, "type", str(self.device))
        if device != "cuda" or self.config.normalize or norm_path is not None:
            return super()._train_env(norm_path)
        return self.wrap(make_venv(self.config, device=self.device))


@register_agent("ppo", "stable-baselines3 PPO, no memory (the baseline)")
class PPOAgent(SB3Agent):
    algorithm = "stable_baselines3:PPO"


@register_agent("dqn", "stable-baselines3 DQN with an observation history + Hopfield extractor")
class DQNHistoryAgent(SB3Agent):
    algorithm = "stable_baselines3:DQN"
    takes_memory_kwargs = True

    def wrap(self, venv):
        from memagent.history import with_memory

        return with_memory(venv, **self.config.memory_kwargs)

    def _normalize(self, venv, training: bool):
        from stable_baselines3.common.vec_env import VecNormalize

        # the history's validity flags and tile codes are read as they are: rewards only
        return VecNormalize(venv, norm_obs=False) if training else venv


def _is_float_box(space) -> bool:
    from gymnasium import spaces
    from stable_baselines3.common.preprocessing import is_image_space

    return isinstance(space, spaces.Box) and not is_image_space(space)


def _normalizable_keys(space) -> list[str] | None:
    """For a ``Dict`` space, its entries ``VecNormalize`` should scale (non-image ``Box``);
    ``None`` for any other space."""
    from gymnasium import spaces

    if not isinstance(space, spaces.Dict):
        return None
    return [k for k, sub in space.spaces.items() if _is_float_box(sub)]


_ALGORITHMS: dict[str, type[SB3Agent]] = {}


def algorithm_agent(name: str) -> type[SB3Agent] | None:
    """An adapter for any SB3-style algorithm: ``"a2c"`` (a class of stable_baselines3 or
    sb3_contrib, case and dashes ignored) or ``"module:Class"``; ``None`` if there is none."""
    if name in _ALGORITHMS:
        return _ALGORITHMS[name]
    from stable_baselines3.common.base_class import BaseAlgorithm

    found = None
    if ":" in name:
        module, _, attr = name.partition(":")
        try:
            cls = getattr(importlib.import_module(module), attr, None)
        except ImportError as err:
            raise ValueError(f"agent {name!r}: cannot import {module!r} ({err})") from None
        if not (isinstance(cls, type) and issubclass(cls, BaseAlgorithm)):
            raise ValueError(f"agent {name!r} is not a stable-baselines3 BaseAlgorithm subclass")
        found = (module, attr)
    else:
        key = name.lower().replace("-", "").replace("_", "")
        for module in ("stable_baselines3", "sb3_contrib"):
            try:
                mod = importlib.import_module(module)
            except ImportError:
                continue
            for attr in getattr(mod, "__all__", dir(mod)):
                cls = getattr(mod, attr, None)
                if isinstance(cls, type) and issubclass(cls, BaseAlgorithm) and attr.lower() == key:
                    found = (module, attr)
                    break
            if found:
                break
    if found is None:
        return None
    adapter = type(f"{found[1]}Agent", (SB3Agent,), {
        "algorithm": f"{found[0]}:{found[1]}", "name": name,
        "description": f"{found[0]}.{found[1]}", "__module__": __name__})
    _ALGORITHMS[name] = adapter
    return adapter
