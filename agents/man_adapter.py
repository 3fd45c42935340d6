"""The MAN adapter: :class:`memagent.agents.man.ManAgent` behind :class:`memagent.agent.Agent`.

One pipeline for ``memagent train --agent man``, ``memagent imagine``, ``eval`` and
``render``: tabular Q-learning for ``total_timesteps`` steps (the behaviour policy), then
``collect_steps`` of acting and filing every screen under its state id, then
``memory_steps`` Adam steps of the long-term memory (MAN §4.2). Its hyperparameters are
``memagent/hyperparams/man.yml``; ``agent_kwargs``: ``collect_steps``, ``memory_steps``,
``epsilon`` (exploration while collecting), ``capacity`` (screens kept per state),
``batch_size``; ``memory_kwargs`` go to the long-term memory.

Evaluation plays the behaviour policy (greedy, or epsilon 0.05 with ``deterministic=False``).
``render --out FILE.png`` draws the imagined screen of every state beside a real one (one
PNG, :meth:`ManAdapter.draw`); ``render --out FILE.gif`` (or ``.mp4``, ``DIR/``) plays the
agent's episodes and shows at every step the real screen (the observation the agent saw), the
long-term memory's reconstruction of it (encode -> decode) and a screen imagined from the
state id alone (:meth:`ManAdapter.frame_views`), with the true state and, for Type B, the
state its memory recognises in the screen.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from memagent.agent import Agent, Episodes, LearnCallback, register_agent

MEMORIES = ("typeA", "typeB")
#: defaults of one memory kind, under the user's memory_kwargs (Type B's decoder reads p(c | z))
MEMORY_DEFAULTS = {"typeB": {"class_code": True}}
AGENT_KWARGS = {"collect_steps": 4_000, "memory_steps": 3_000, "epsilon": 0.05, "capacity": 100,
                "batch_size": 64}
CHUNK = 1_000  # Q-learning steps between callback calls


def man_env(config, seed: int | None = None, env_id: str | None = None):
    """The single gymnasium env MAN acts in (needs ``info["state_id"]`` and ``n_states``), reset."""
    import gymnasium as gym

    env_id = env_id or config.env_id
    env = gym.make(env_id, **config.env_kwargs)
    if not hasattr(env.unwrapped, "n_states"):
        raise ValueError(f"the man agent needs an env with state ids (info['state_id'], "
                         f"n_states), e.g. memagent/Screens-v0; {env_id} has none")
    env.reset(seed=config.seed if seed is None else seed)
    return env


@register_agent("man", "Memory Association Network agent (--memory typeA|typeB; env memagent/Screens-v0)")
class ManAdapter(Agent):
    default_env = "memagent/Screens-v0"
    can_resume = False
    render_kind = "both"  # FILE.png: the figure of every state; FILE.gif: episodes

    def __init__(self, config, device: Any = "cpu"):
        super().__init__(config, device)
        self.agent = None

    @classmethod
    def memory_choices(cls) -> list[str]:
        return list(MEMORIES)

    @classmethod
    def check_config(cls, config, given: set[str]) -> None:
        if config.memory not in MEMORIES:
            raise ValueError(f"unknown MAN memory {config.memory!r}; known: {', '.join(MEMORIES)}")
        unknown = sorted(set(config.agent_kwargs) - set(AGENT_KWARGS))
        if unknown:
            raise ValueError(f"agent_kwargs for man: unknown {unknown}; known: {', '.join(AGENT_KWARGS)}")
        if config.curriculum:
            raise ValueError("--curriculum applies to the SB3 agents (memory-ppo, ppo, dqn, ...), not man")

    def _kw(self, key: str):
        return self.config.agent_kwargs.get(key, AGENT_KWARGS[key])

    # -- life cycle ----------------------------------------------------------------------
    def build(self, run_dir: Path | None = None) -> None:
        from memagent.agents.man import ManAgent

        config = self.config
        memory_kwargs = {**MEMORY_DEFAULTS.get(config.memory, {}), **config.memory_kwargs}
        try:
            self.agent = ManAgent(man_env(config), memory=config.memory, capacity=self._kw("capacity"),
                                  memory_kwargs=memory_kwargs, device=str(self.device), seed=config.seed)
        except TypeError as err:
            raise ValueError(f"man: {err} (check memory_kwargs in the config file)") from None

    def learn(self, total_timesteps: int, callbacks: Sequence[LearnCallback] = (),
              reset: bool = True) -> None:
        """Q-learning ``total_timesteps`` env steps (the callbacks see these, every
        :data:`CHUNK` steps, and end with them), then acting and filing screens, then the
        long-term memory: these two phases report through :meth:`progress` (steps and states
        visited; steps and the loss terms averaged since the last report, every 10 steps) and stop early when
        it returns False."""
        import numpy as np

        for cb in callbacks:
            cb.on_start(self)
        self.log(f"Q-learning the behaviour policy: {total_timesteps:,} steps")
        done, go = 0, True
        while done < total_timesteps and go:
            n = min(CHUNK, total_timesteps - done)
            self.agent.policy.learn(n)
            done += n
            go = all([cb.on_step(self, ()) is not False for cb in callbacks])
        for cb in callbacks:  # the env steps end here: the bar of Q-learning steps closes
            cb.on_end(self)
        if not go:
            return
        collect, phase = self._kw("collect_steps"), "acting and filing screens by state"
        self.log(f"{phase}: {collect:,} steps, epsilon {self._kw('epsilon'):g}")
        filed = 0
        while filed < collect and go:
            n = min(max(collect // 10, 1), collect - filed)  # a tenth at a time
            self.agent.collect(n, epsilon=self._kw("epsilon"))
            filed += n
            visited = int(self.agent.coverage()["visited"].sum())
            go = self.progress(phase, filed, collect, states=f"{visited}/{self.agent.n_states}") is not False
        if not go:
            return
        steps, phase = self._kw("memory_steps"), "training the long-term memory"
        self.log(f"{phase}: {steps:,} Adam steps of {self._kw('batch_size')} screens "
                 f"({type(self.agent.long_term).__name__})")
        recent: list[dict] = []
        every = max(1, min(10, steps // 10))  # report every 10 steps (fewer on short runs)

        def report(step: int, parts: dict) -> bool:
            recent.append(parts)
            if step % every and step != steps:
                return True
            mean = {k: float(np.mean([p[k] for p in recent])) for k in recent[-1]}
            recent.clear()
            return self.progress(phase, step, steps, **mean) is not False

        self.agent.train_memory(steps, batch_size=self._kw("batch_size"), callback=report)

    @property
    def num_timesteps(self) -> int:
        return int(self.agent.policy.num_timesteps)

    def n_params(self) -> int:
        return sum(p.numel() for p in self.agent.long_term.parameters())

    def act(self, obs, state=None, episode_start=None, deterministic: bool = True):
        """One action for one env; ``state`` is the env's last ``info`` (it holds the state id).
        A batched ``obs`` of one env, ``(1, *obs_shape)`` as a VecEnv gives it, gets ``(1,)``
        actions back."""
        import numpy as np

        obs = np.asarray(obs)
        batched = obs.ndim == len(self.agent.short_term.item_shape) + 1
        action = self.agent.act(obs[0] if batched else obs, state or {}, 0.0 if deterministic else 0.05)
        return (np.array([action]) if batched else action), state

    def carry_info(self, state, info: dict):
        return info  # the behaviour policy reads info["state_id"]

    def evaluate(self, n_episodes: int, seed: int, deterministic: bool = True,
                 env_id: str | None = None, n_envs: int | None = None) -> Episodes:
        env = man_env(self.config, seed, env_id)
        epsilon = 0.0 if deterministic else 0.05
        returns, lengths, successes = [], [], []
        for episode in range(n_episodes):
            obs, info = env.reset(seed=seed + episode)
            total, length, done = 0.0, 0, False
            while not done:
                obs, reward, terminated, truncated, info = env.step(self.agent.act(obs, info, epsilon))
                total, length, done = total + float(reward), length + 1, terminated or truncated
            returns.append(total)
            lengths.append(length)
            s = info.get("is_success")
            successes.append(None if s is None else bool(s))
        env.close()
        return Episodes(returns, lengths, successes)

    def summary(self) -> str:
        cov = self.agent.coverage()
        return f"{int(cov['visited'].sum())}/{self.agent.n_states} states in the memory"

    # -- persistence ---------------------------------------------------------------------
    def save(self, run_dir: Path) -> None:
        self.agent.save(Path(run_dir) / "man")

    @classmethod
    def load(cls, config, run_dir: Path, device: Any = "cpu", training: bool = False) -> ManAdapter:
        from memagent.agents.man import ManAgent

        adapter = cls(config, device)
        adapter.agent = ManAgent.load(Path(run_dir) / "man", man_env(config), device=str(device))
        return adapter

    # -- rendering -----------------------------------------------------------------------
    def make_env(self, n_envs: int = 1, seed: int | None = None, render: bool = False,
                 env_id: str | None = None):
        """One env in a ``DummyVecEnv``; ``render``: ``info["frame"]`` is the observation (the
        screen the agent and its memory see, noise and distractors included)."""
        import gymnasium as gym
        from stable_baselines3.common.vec_env import DummyVecEnv

        if n_envs != 1:
            raise ValueError(f"the man agent acts in one env at a time, got n_envs={n_envs}")

        class ScreenFrame(gym.Wrapper):
            def reset(self, **kwargs):
                obs, info = self.env.reset(**kwargs)
                return obs, {**info, "frame": obs.copy()} if render else info

            def step(self, action):
                obs, reward, terminated, truncated, info = self.env.step(action)
                if render:
                    info = {**info, "frame": obs.copy()}
                return obs, reward, terminated, truncated, info

        env = man_env(self.config, seed, env_id)
        venv = DummyVecEnv([lambda: ScreenFrame(env)])
        venv.seed(self.config.seed if seed is None else seed)
        return venv

    def frame_views(self, frame, info: dict) -> dict:
        """The long-term memory's ``"reconstruction"`` of the screen (encode -> decode at the
        encoder's mean, keyed by the true state for Type A), a screen ``"imagined"`` from the
        state id alone (temperature 1), and a line naming the true state (Type B: and the one
        :meth:`~memagent.memory.generative.LambdaHotVAEMemory.recognize` reads in the screen)."""
        import warnings

        import numpy as np

        from memagent.agent import ScreenView
        from memagent.memory.generative import UnseenClassWarning

        memory, state = self.agent.long_term, int(info["state_id"])
        screen = np.asarray(frame)[None]                                     # (1, H, W, 3)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UnseenClassWarning)  # the text says "never visited"
            imagined = memory.imagine([state], 1)[0, 0]
        views = {"reconstruction": ScreenView(memory.reconstruct(screen, [state])[0]),
                 "imagined": ScreenView(imagined)}
        base = self.agent.env.unwrapped
        where = (f" (position {state % base.n_positions}, direction {state // base.n_positions})"
                 if hasattr(base, "n_positions") else "")
        text = f"true state {state}{where}"
        if self.agent.short_term.seen[state] == 0:
            text += ", never visited in training"
        if hasattr(memory, "recognize"):
            recognised = int(memory.recognize(screen)[0])
            text += f"; recognised state {recognised} ({'right' if recognised == state else 'wrong'})"
        views["state"] = text
        return views

    def draw(self, out: Path, seed: int, env_id: str | None = None, temperature: float = 1.0) -> str:
        """The imagined screen of every state (position x direction) beside a real one, as a
        PNG (:func:`memagent.figures.state_figure`: titled, panels named, axes labelled);
        unvisited states greyed out with a red cross, named in the legend. Returns the
        coverage lines."""
        import warnings

        import numpy as np
        import torch as th

        from memagent.figures import save_png, state_figure
        from memagent.memory.generative import UnseenClassWarning

        if not str(out).lower().endswith(".png"):
            raise ValueError("the man agent draws its imagined screen of every state as one "
                             f"picture: pass --out FILE.png (got {str(out)!r})")
        env = man_env(self.config, seed, env_id)
        base = env.unwrapped
        missing = [a for a in ("n_positions", "n_directions") if not hasattr(base, a)]
        if missing:
            raise ValueError(f"{env.spec.id} has no {', '.join(missing)}: drawing needs a "
                             "state-keyed gridworld such as memagent/Screens-v0")
        agent = self.agent
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UnseenClassWarning)  # unvisited states are reported
            th.manual_seed(seed)
            imagined = agent.imagine(range(agent.n_states), 4, temperature=temperature)  # (S, 4, H, W, 3)
        cov = agent.coverage()
        real = agent.real_screens()
        canonical = getattr(base, "canonical_screen", None)
        if canonical is not None:
            for s in range(agent.n_states):
                if agent.short_term.counts[s] == 0:
                    real[s] = canonical(s)
        memory = type(agent.long_term).__name__
        title = (f"MAN long-term memory ({memory}) on {env.spec.id}: imagined screens "
                 f"(temperature {temperature:g}) and real screens of every state; "
                 f"{int(cov['visited'].sum())}/{agent.n_states} states visited")
        figure, _ = state_figure(imagined[:, 0], base.n_positions, base.n_directions, cov["visited"],
                                 real, title=title, direction_names=getattr(base, "direction_names", None))
        save_png(figure, out)
        self.imagined, self.figure = imagined, figure
        unvisited = np.flatnonzero(~cov["visited"]).tolist()
        return (f"{out}: {base.n_directions} directions (rows) x {base.n_positions} positions "
                f"(columns), imagined | real\n"
                f"coverage: {int(cov['visited'].sum())}/{agent.n_states} states visited; "
                f"unvisited (red cross): {unvisited}")
