"""The agents ``memagent train`` knows, and the preset hyperparameters for each env: one place.

An agent is a name, a one-line description, and how to build its SB3-style model and its
env. A preset fills every field of :class:`memagent.runs.TrainConfig` the user left out:
:data:`DEFAULTS` per agent, then :data:`PRESETS` per (env, agent) on top. Values a user gives
(a ``--config`` file, then flags) always win.

===============  =============================================================================
agent            what it is
===============  =============================================================================
``memory-ppo``   :class:`memagent.agents.memory_ppo.MemoryPPO`: PPO whose policy carries a memory
                 core (``--memory lstm|gru|nmn|hopfield``), trained on whole sequences
``ppo``          stable-baselines3 PPO with an MLP (or CNN for pixels): no memory, the baseline
``dqn``          stable-baselines3 DQN on an observation history read by a Hopfield extractor
                 (:func:`memagent.history.with_memory`): the memory path for any SB3 algorithm
``man``          the Memory Association Network agent (:mod:`memagent.agents.man`): Q-learning
                 behaviour policy, class-keyed short-term queues, generative long-term memory
                 (``--memory typeA|typeB``); default env ``memagent/Screens-v0``
===============  =============================================================================

The default run, ``memagent train`` (``memagent/TMaze-v0``, ``memory-ppo``, ``hopfield``), is
sized to finish in a few minutes on a laptop CPU and reach a high success rate (docs/cli.md).
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

MEMORY_CORES = ("lstm", "gru", "nmn", "hopfield")
MAN_MEMORIES = ("typeA", "typeB")
#: Agents whose default env is not ``memagent/TMaze-v0`` (MAN needs ``info["state_id"]``).
DEFAULT_ENVS = {"man": "memagent/Screens-v0"}


@dataclass(frozen=True)
class AgentSpec:
    """One agent of the registry."""

    name: str
    """the ``--agent`` name."""
    description: str
    """one line for ``memagent train --help`` and error messages."""
    target: str
    """``module:Class`` of the model; imported only when the agent is used."""
    recurrent: bool = False
    """whether ``predict`` carries a state that must be passed back with ``episode_start``."""

    def available(self) -> bool:
        module = self.target.split(":")[0]
        try:
            return importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            return False

    def model_class(self):
        module, cls = self.target.split(":")
        return getattr(importlib.import_module(module), cls)


AGENTS: dict[str, AgentSpec] = {
    spec.name: spec
    for spec in (
        AgentSpec("memory-ppo", "PPO with a memory core in the policy (--memory lstm|gru|nmn|hopfield)",
                  "memagent.agents.memory_ppo:MemoryPPO", recurrent=True),
        AgentSpec("ppo", "stable-baselines3 PPO, no memory (the baseline)", "stable_baselines3:PPO"),
        AgentSpec("dqn", "stable-baselines3 DQN with an observation history + Hopfield extractor",
                  "stable_baselines3:DQN"),
        AgentSpec("man", "Memory Association Network agent (--memory typeA|typeB; env "
                  "memagent/Screens-v0)", "memagent.agents.man:ManAgent"),
    )
}

#: Per-agent defaults, used for any env without its own preset.
DEFAULTS: dict[str, dict[str, Any]] = {
    # MemoryPPO's own defaults, spelled out so config.json shows them; batch_size 512 is
    # 4 whole env sequences of n_steps per minibatch.
    "memory-ppo": dict(memory="hopfield", total_timesteps=100_000, n_envs=8,
                       agent_kwargs=dict(n_steps=128, batch_size=512, n_epochs=10,
                                         learning_rate=3e-4, ent_coef=0.0, gamma=0.99)),
    "ppo": dict(total_timesteps=100_000, n_envs=8,
                agent_kwargs=dict(n_steps=128, batch_size=256, n_epochs=4, learning_rate=3e-4)),
    # gamma 0.9: with a history memory, 0.99 over-values free moves at the junction and the
    # greedy policy loops until the time limit (measured: 0.99 -> 0/100, 0.9 -> 100/100).
    "dqn": dict(total_timesteps=100_000, n_envs=4,
                memory_kwargs=dict(window=16, embed_dim=32, hidden_dim=32),
                agent_kwargs=dict(learning_rate=1e-3, buffer_size=20_000, learning_starts=1_000,
                                  batch_size=64, gamma=0.9, train_freq=4,
                                  target_update_interval=500, exploration_fraction=0.3,
                                  exploration_final_eps=0.05,
                                  policy_kwargs=dict(net_arch=[64]))),
    # total_timesteps: Q-learning steps of the behaviour policy; then collect_steps of acting
    # and filing screens, then memory_steps Adam steps of the long-term memory (MAN §4.2).
    "man": dict(memory="typeA", total_timesteps=20_000, n_envs=1,
                agent_kwargs=dict(collect_steps=4_000, memory_steps=3_000, epsilon=0.05,
                                  capacity=100),
                memory_kwargs=dict(net_kwargs={"channels": [16, 32, 32, 64]})),
}

#: Per-(env, agent) presets over :data:`DEFAULTS`. ``agent_kwargs`` / ``memory_kwargs`` merge.
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "memagent/TMaze-v0": {
        # The learning rate decays to 0 over the run: with a constant rate greedy success
        # flickered between 100% and chance after ~50k steps (seed 0: chance at 53k, 56k
        # and 62k, 100% at 59k), so the figure at the end depended on where the run stopped;
        # the tests' tracked runs held 100% from 36k to the end on seeds 0-3 this way
        # (docs/policies.md). target_kl stops an update's epochs early.
        "memory-ppo": dict(total_timesteps=60_000, n_envs=8,
                           agent_kwargs=dict(learning_rate="lin_3e-4", target_kl=0.01)),
        # no memory: stays at chance, the baseline to compare with
        "ppo": dict(total_timesteps=60_000),
        # seeds 0-6: 100/100 greedy successes after 12k steps (tests/agents/test_history.py)
        "dqn": dict(total_timesteps=12_000),
    },
    "memagent/TMaze-L1000-v0": {
        # a 1000-step delay, learnt through shorter ones: 60k steps at length 10, 100k at 100,
        # then 40k at length 1000. Cosine scores (beta 16) keep the read from becoming an argmax that
        # one update can move off the cue; the learning rate decays to 0 (with about one
        # junction per rollout at L=1000, a constant rate kept flipping the choice between
        # 100% and chance); target_kl and no time-limit bootstrap keep PPO from unlearning
        # the choice. Per-seed figures: docs/policies.md, delay scaling.
        "memory-ppo": dict(total_timesteps=200_000, n_envs=8, curriculum=[[10, 60_000], [100, 100_000]],
                           memory_kwargs=dict(similarity="cosine", beta=16.0),
                           agent_kwargs=dict(learning_rate="lin_3e-4", target_kl=0.01,
                                             bootstrap_truncated=False)),
    },
    "CartPole-v1": {
        "ppo": dict(total_timesteps=50_000, n_envs=8),
    },
}

_DICT_FIELDS = ("agent_kwargs", "memory_kwargs", "env_kwargs")


def check_agent(name: str) -> AgentSpec:
    """The registry entry for ``name``, or an error listing the known agents."""
    if name not in AGENTS:
        known = ", ".join(AGENTS)
        raise ValueError(f"unknown agent {name!r}; known agents: {known}")
    spec = AGENTS[name]
    if not spec.available():
        raise ValueError(
            f"agent {name!r} is not available yet in this build ({spec.target.split(':')[0]} "
            f"is missing); available agents: {', '.join(a for a, s in AGENTS.items() if s.available())}"
        )
    return spec


def check_env(env_id: str) -> str:
    """``env_id`` if gymnasium knows it (``import memagent`` registers ours), else an error."""
    import gymnasium as gym

    import memagent  # noqa: F401  (registers memagent/...)

    if env_id not in gym.envs.registry:
        ours = sorted(k for k in gym.envs.registry if k.startswith("memagent/"))
        raise ValueError(
            f"unknown env {env_id!r}; known memagent envs: {', '.join(ours) or '(none registered)'}"
            " (or any gymnasium id, e.g. CartPole-v1)"
        )
    return env_id


def resolve(config, given: set[str]):
    """Fill the fields of ``config`` not in ``given`` from the agent's defaults and env preset.

    :param config: a :class:`memagent.runs.TrainConfig`.
    :param given: names of the fields the user set (config file or flags).
    :return: a new config with every ``None`` replaced.
    """
    preset: dict[str, Any] = {}
    for layer in (DEFAULTS.get(config.agent, {}), PRESETS.get(config.env_id, {}).get(config.agent, {})):
        for key, value in layer.items():
            preset[key] = {**preset.get(key, {}), **value} if key in _DICT_FIELDS else value
    updates = {}
    for key, value in preset.items():
        if key in _DICT_FIELDS:
            updates[key] = {**value, **getattr(config, key)}
        elif key not in given or getattr(config, key) is None:
            updates[key] = value
    config = replace(config, **updates)
    if config.agent == "memory-ppo":
        if config.memory not in MEMORY_CORES:
            raise ValueError(f"unknown memory core {config.memory!r}; known cores: {', '.join(MEMORY_CORES)}")
    elif config.agent == "man":
        if config.memory not in MAN_MEMORIES:
            raise ValueError(f"unknown MAN memory {config.memory!r}; known: {', '.join(MAN_MEMORIES)}")
    elif config.memory is not None and "memory" in given:
        raise ValueError(f"--memory only applies to the memory-ppo and man agents, not {config.agent!r}")
    if config.total_timesteps is None or config.total_timesteps < 1:
        raise ValueError(f"total_timesteps (--steps) must be >= 1, got {config.total_timesteps}")
    if config.n_envs is None or config.n_envs < 1:
        raise ValueError(f"n_envs (--n-envs) must be >= 1, got {config.n_envs}")
    if config.curriculum:
        check_run_curriculum(config)
    return config


def check_run_curriculum(config) -> None:
    """Errors for a ``curriculum`` this run cannot follow (see :mod:`memagent.curriculum`)."""
    import inspect

    from memagent.curriculum import check_curriculum

    stages = check_curriculum(config.curriculum)
    if config.agent == "man":
        raise ValueError("--curriculum applies to the SB3 agents (memory-ppo, ppo, dqn), not man")
    if config.normalize:
        raise ValueError("--curriculum cannot be combined with normalize: each stage's env would "
                         "need its own VecNormalize statistics; drop one of them")
    if not config.env_id.startswith("memagent/"):
        raise ValueError(f"--curriculum changes a memagent world's length; {config.env_id} is not "
                         "a memagent env (use memagent/TMaze-L1000-v0 or another T-maze)")
    from memagent.envs import _env_class

    _, cls = _env_class(config.env_id)
    if "length" not in inspect.signature(cls.engine_cls.__init__).parameters:
        raise ValueError(f"--curriculum changes the world's length, but {config.env_id} has no "
                         "length argument; use a T-maze (memagent/TMaze-...)")
    used = sum(steps for _, steps in stages)
    if used >= config.total_timesteps:
        raise ValueError(f"the curriculum stages take {used:,} steps, which leaves none of "
                         f"total_timesteps (--steps) {config.total_timesteps:,} for "
                         f"{config.env_id} itself; pass --steps above {used:,}")


def curriculum_callback(config, verbose: int = 0):
    """The :class:`memagent.curriculum.CurriculumCallback` of a run's ``curriculum``, or None.

    Stage ``i`` uses the run's env with ``length`` changed, its wrappers, and the seed
    ``seed + 1000 * (i + 1)``.
    """
    if not config.curriculum:
        return None
    from memagent.curriculum import CurriculumCallback, check_curriculum

    def maker(i: int, length: int):
        stage = replace(config, env_kwargs={**config.env_kwargs, "length": length})
        return lambda: wrap_venv(stage, make_venv(stage, seed=config.seed + 1000 * (i + 1)))[0]

    stages = [(steps, maker(i, length)) for i, (length, steps) in enumerate(check_curriculum(config.curriculum))]
    return CurriculumCallback(stages, verbose=verbose)


# --------------------------------------------------------------------------- building


def make_venv(config, n_envs: int | None = None, seed: int | None = None, render: bool = False):
    """The vectorised env of a run, before any agent-specific wrapper.

    ``memagent/...`` ids use the batched engine (:func:`memagent.envs.make_vec`); other ids use
    SB3's ``make_vec_env`` (with ``Monitor``). ``render=True`` gives one env with
    ``render_mode="rgb_array"`` whose ``info["frame"]`` holds the screen after every step,
    the last of an episode included.
    """
    n = n_envs or config.n_envs
    seed = config.seed if seed is None else seed
    kwargs = dict(config.env_kwargs)
    if render:
        import gymnasium as gym
        from stable_baselines3.common.vec_env import DummyVecEnv

        def make():
            return FrameInfo(gym.make(config.env_id, render_mode="rgb_array", **kwargs))

        venv = DummyVecEnv([make])
        venv.seed(seed)
        return venv
    try:
        if config.env_id.startswith("memagent/"):
            from memagent.envs import make_vec

            return make_vec(config.env_id, n, seed=seed, **kwargs)
        from stable_baselines3.common.env_util import make_vec_env

        return make_vec_env(config.env_id, n_envs=n, seed=seed, env_kwargs=kwargs)
    except TypeError as err:  # a misspelt key in env_kwargs
        raise ValueError(f"{config.env_id}: {err} (check env_kwargs in the config file)") from None


def wrap_venv(config, venv, norm_path=None, training: bool = True):
    """Agent wrappers (dqn's observation history) then VecNormalize; returns (venv, policy_kwargs)."""
    policy_kwargs: dict[str, Any] = {}
    if config.agent == "dqn":
        from memagent.history import with_memory

        venv, policy_kwargs = with_memory(venv, **config.memory_kwargs)
    if norm_path is not None:
        from stable_baselines3.common.vec_env import VecNormalize

        venv = VecNormalize.load(str(norm_path), venv)
        venv.training = training
        venv.norm_reward = venv.norm_reward and training
    elif config.normalize:
        from stable_baselines3.common.vec_env import VecNormalize

        # dqn's observation is a history window with validity flags and tile codes that the
        # extractor reads as they are: normalise its rewards only (docs/history.md, limits)
        venv = VecNormalize(venv, norm_obs=config.agent != "dqn")
    return venv, policy_kwargs


def _policy_for(venv) -> str:
    from stable_baselines3.common.preprocessing import is_image_space

    return "CnnPolicy" if is_image_space(venv.observation_space) else "MlpPolicy"


def algo_kwargs(agent_kwargs: dict) -> dict:
    """``agent_kwargs`` with rl-zoo's ``"lin_X"`` strings turned into linear schedules X -> 0.

    ``{"learning_rate": "lin_1e-3"}`` decays the learning rate linearly to 0 over the run
    (also for ``clip_range``, ``ent_coef`` is not a schedule in SB3 and stays a number).
    """
    out = dict(agent_kwargs)
    for key, value in agent_kwargs.items():
        if isinstance(value, str) and value.startswith("lin_"):
            try:
                start = float(value[4:])
            except ValueError:
                raise ValueError(f"agent_kwargs {key}={value!r}: lin_ must be followed by a "
                                 "number, e.g. 'lin_3e-4'") from None
            out[key] = _Linear(start)
    return out


class _Linear:
    """``progress_remaining * start`` (SB3 schedules get progress_remaining from 1 to 0)."""

    def __init__(self, start: float):
        self.start = start

    def __call__(self, progress_remaining: float) -> float:
        return progress_remaining * self.start

    def __repr__(self) -> str:
        return f"lin_{self.start:g}"


def _build_sb3(config, venv, policy_kwargs, **common):
    cls = AGENTS[config.agent].model_class()
    kwargs = algo_kwargs(config.agent_kwargs)
    if policy_kwargs:
        kwargs["policy_kwargs"] = {**policy_kwargs, **kwargs.get("policy_kwargs", {})}
    elif config.agent == "ppo" and config.memory_kwargs:
        raise ValueError("memory_kwargs only apply to memory-ppo, dqn and man, not ppo")
    return cls(_policy_for(venv), venv, **kwargs, **common)


def _build_memory_ppo(config, venv, policy_kwargs, **common):
    cls = AGENTS["memory-ppo"].model_class()
    kwargs = algo_kwargs(config.agent_kwargs)
    pk = {"memory": config.memory, "memory_kwargs": dict(config.memory_kwargs),
          **kwargs.pop("policy_kwargs", {})}
    return cls(_policy_for(venv), venv, policy_kwargs=pk, **kwargs, **common)


def _build_man(config, venv, policy_kwargs, **common):
    raise ValueError("the man agent trains with train_man(), not an SB3 learn() loop")


def man_env(config, seed: int | None = None):
    """The single gymnasium env MAN acts in (needs ``info["state_id"]`` and ``n_states``)."""
    import gymnasium as gym

    env = gym.make(config.env_id, **config.env_kwargs)
    if not hasattr(env.unwrapped, "n_states"):
        raise ValueError(f"the man agent needs an env with state ids (info['state_id'], "
                         f"n_states), e.g. memagent/Screens-v0; {config.env_id} has none")
    env.reset(seed=config.seed if seed is None else seed)
    return env


def train_man(config, out_dir, device, log=print):
    """Train a :class:`memagent.agents.man.ManAgent` as ``memagent imagine`` does, save to ``out_dir``.

    Q-learning for ``total_timesteps``, then ``collect_steps`` of acting and filing screens,
    then ``memory_steps`` of the long-term memory; returns the agent.
    """
    kw = dict(config.agent_kwargs)
    unknown = set(kw) - {"collect_steps", "memory_steps", "epsilon", "capacity", "batch_size"}
    if unknown:
        raise ValueError(f"agent_kwargs for man: unknown {sorted(unknown)}; known: collect_steps, "
                         "memory_steps, epsilon, capacity, batch_size")
    agent = AGENTS["man"].model_class()(
        man_env(config), memory=config.memory, capacity=kw.get("capacity", 100),
        memory_kwargs=dict(config.memory_kwargs), device=str(device), seed=config.seed)
    log(f"Q-learning {config.total_timesteps:,} steps")
    agent.policy.learn(config.total_timesteps)
    log(f"acting {kw.get('collect_steps', 4_000):,} steps, filing screens by state")
    agent.collect(kw.get("collect_steps", 4_000), epsilon=kw.get("epsilon", 0.05))
    log(f"long-term memory: {kw.get('memory_steps', 3_000):,} Adam steps")
    agent.train_memory(kw.get("memory_steps", 3_000), batch_size=kw.get("batch_size", 64))
    agent.save(out_dir)
    return agent


BUILDERS: dict[str, Callable[..., Any]] = {
    "memory-ppo": _build_memory_ppo, "ppo": _build_sb3, "dqn": _build_sb3, "man": _build_man,
}


def build_model(config, venv, policy_kwargs, device, tensorboard_log=None):
    """A fresh model for ``config`` on ``venv`` (already wrapped by :func:`wrap_venv`)."""
    try:
        return BUILDERS[config.agent](config, venv, policy_kwargs, seed=config.seed, device=device,
                                      tensorboard_log=tensorboard_log, verbose=0)
    except TypeError as err:  # a misspelt key in agent_kwargs / memory_kwargs
        raise ValueError(f"{config.agent}: {err} (check agent_kwargs and memory_kwargs in the "
                         "config file)") from None


def load_model(config, path, venv, device="cpu"):
    """Load a saved model of ``config.agent`` onto ``venv`` (SB3's ``Class.load``)."""
    return AGENTS[config.agent].model_class().load(str(path), env=venv, device=device)


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
