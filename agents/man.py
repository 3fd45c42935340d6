"""The Memory Association Networks agent (Kim et al., MAN §4.2).

A behaviour policy (tabular :class:`~memagent.agents.qlearning.QLearning`, or any SB3 model)
acts in an env that reports ``info["state_id"]`` (``memagent/Screens-v0``); every screen it
sees is filed in the short-term memory under its state id (one FIFO queue per state, §3.1);
the long-term memory (Type A or B, §3.2-3.3) is trained from the queues' class-balanced
batches and then imagines the screen of any state on demand. States the policy never visited
have no memory: :meth:`ManAgent.coverage` says which, and ``imagine`` warns about them.

Usage::

    env = gym.make("memagent/Screens-v0")
    agent = ManAgent(env, memory="typeA", seed=0)
    agent.policy.learn(20_000)          # train the behaviour policy first (the paper's "pre-learned")
    agent.collect(5_000)                # act and file every screen under its state id
    agent.train_memory(3_000)           # long-term memory from balanced batches
    screens = agent.imagine(range(agent.n_states), n=1)   # (n_states, 1, 64, 64, 3) uint8
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from memagent.agents.qlearning import QLearning


class ManAgent:
    """Behaviour policy + short-term class queues + long-term generative memory.

    :param env: a gymnasium env whose ``info`` carries ``"state_id"`` on reset and step, and
        whose unwrapped env has ``n_states`` (or pass ``n_states``).
    :param policy: a :class:`QLearning` or an SB3 model (``predict(obs, deterministic)``);
        ``None`` makes a ``QLearning(env, seed=seed)``.
    :param memory: ``"typeA"``, ``"typeB"`` or a ready :class:`GenerativeMemory`.
    :param capacity: screens kept per state in the short-term memory.
    :param n_states: number of state ids (default ``env.unwrapped.n_states``).
    :param memory_kwargs: passed to the long-term memory (``latent_dim``, ``net_kwargs``...).
    :param device: where the long-term memory trains.
    :param seed: seeds the policy, the env, the queues' sampling and the long-term memory.
    """

    def __init__(self, env: gym.Env, policy=None, memory: Any = "typeA", capacity: int = 100,
                 n_states: int | None = None, memory_kwargs: dict | None = None,
                 device: str = "auto", seed: int | None = None):
        import torch as th

        from memagent.memory.generative import GenerativeMemory, make_memory
        from memagent.memory.replay import ClassQueueMemory

        self.env, self.seed = env, seed
        self.n_states = int(n_states if n_states is not None
                            else getattr(env.unwrapped, "n_states", 0))
        if self.n_states < 1:
            raise ValueError("ManAgent needs the number of state ids: the env has no "
                             "unwrapped.n_states, pass n_states=...")
        shape = env.observation_space.shape
        self.policy = policy if policy is not None else QLearning(env, seed=seed)
        dtype = th.uint8 if env.observation_space.dtype == np.uint8 else th.float32
        self.short_term = ClassQueueMemory(self.n_states, capacity, shape, dtype=dtype, seed=seed)
        if isinstance(memory, GenerativeMemory):
            self.long_term = memory
        else:
            self.memory_kind = memory
            self.long_term = make_memory(memory, self.n_states, shape, device=device, seed=seed,
                                         **(memory_kwargs or {}))
        self._obs = self._info = None

    # -- acting ----------------------------------------------------------------------------
    def act(self, obs, info: dict, epsilon: float = 0.0) -> int:
        """The behaviour policy's action for ``obs`` (``info`` holds the state id), epsilon-greedy."""
        if isinstance(self.policy, QLearning):
            return self.policy.predict(obs, info, deterministic=epsilon == 0, epsilon=epsilon)
        rng = self.short_term.rng
        if epsilon and rng.random() < epsilon:
            return int(self.env.action_space.sample())
        action, _ = self.policy.predict(obs, deterministic=True)
        return int(action)

    def collect(self, n_steps: int, epsilon: float = 0.05) -> np.ndarray:
        """Act ``n_steps`` with the behaviour policy (epsilon-greedy) and file every screen,
        the first of each episode included, under its ``info["state_id"]``.

        :return: (n_states,) screens filed per state during this call.
        """
        filed = np.zeros(self.n_states, dtype=np.int64)
        if self._obs is None:
            self._obs, self._info = self.env.reset(seed=self.seed)
        screens, keys = [], []
        for _ in range(int(n_steps)):
            keys.append(self._state_id(self._info))
            screens.append(np.asarray(self._obs))
            action = self.act(self._obs, self._info, epsilon)
            obs, _, terminated, truncated, info = self.env.step(action)
            if terminated or truncated:
                keys.append(self._state_id(info))
                screens.append(np.asarray(obs))
                obs, info = self.env.reset()
            self._obs, self._info = obs, info
            if len(keys) >= 256:  # file in batches: one vectorised add per 256 screens
                filed += self._file(keys, screens)
                screens, keys = [], []
        if keys:
            filed += self._file(keys, screens)
        return filed

    @staticmethod
    def _state_id(info: dict) -> int:
        if "state_id" not in info:
            raise ValueError("the env's info has no 'state_id': ManAgent files screens by "
                             "state id (memagent/Screens-v0 gives one on reset and step)")
        return int(info["state_id"])

    def _file(self, keys, screens) -> np.ndarray:
        keys = np.asarray(keys, dtype=np.int64)
        self.short_term.add(keys, np.stack(screens))
        return np.bincount(keys, minlength=self.n_states)

    # -- memory ----------------------------------------------------------------------------
    def train_memory(self, steps: int, batch_size: int = 64, callback=None):
        """Train the long-term memory ``steps`` Adam steps on balanced batches of the queues;
        ``callback(step, loss_terms)`` after each (False stops), as in
        :meth:`GenerativeMemory.fit <memagent.memory.generative.GenerativeMemory.fit>`."""
        return self.long_term.fit(self.short_term, steps, batch_size=batch_size, callback=callback)

    def coverage(self) -> dict[str, Any]:
        """Per-state coverage: ``seen`` (n_states,) screens ever filed, ``visited`` mask,
        ``fraction`` of states visited."""
        seen = self.short_term.seen.copy()
        return {"seen": seen, "visited": seen > 0, "fraction": float((seen > 0).mean())}

    def imagine(self, states, n: int = 1, temperature: float = 1.0) -> np.ndarray:
        """``n`` imagined screens per state: (len(states), n, *obs_shape); ``temperature``: see
        :meth:`GenerativeMemory.imagine <memagent.memory.generative.GenerativeMemory.imagine>`."""
        return self.long_term.imagine(np.asarray(list(states)), n, temperature=temperature)

    def real_screens(self) -> np.ndarray:
        """The newest real screen of every state, zeros where none: (n_states, *obs_shape)."""
        out = np.zeros((self.n_states, *self.short_term.item_shape),
                       dtype=self.short_term.storage.numpy().dtype)
        for s in np.flatnonzero(self.short_term.counts):
            out[s] = self.short_term.items_of(int(s))[-1].numpy()
        return out

    # -- persistence -----------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """``short_term.pt``, ``long_term.pt``, ``policy.json`` (Q-learning) and ``config.json``."""
        from memagent.utils import atomic_write

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.short_term.save(directory / "short_term.pt")
        self.long_term.save(directory / "long_term.pt")
        if isinstance(self.policy, QLearning):
            self.policy.save(directory / "policy.json")
        env_id = self.env.spec.id if self.env.spec is not None else None
        config = {"env_id": env_id, "n_states": self.n_states, "seed": self.seed,
                  "memory": type(self.long_term).__name__,
                  "policy": type(self.policy).__name__}
        atomic_write(directory / "config.json",
                     lambda tmp: Path(tmp).write_text(json.dumps(config, indent=2)))
        return directory

    @classmethod
    def load(cls, directory: str | Path, env: gym.Env, device: str = "auto") -> ManAgent:
        from memagent.memory.generative import GenerativeMemory
        from memagent.memory.replay import ClassQueueMemory

        directory = Path(directory)
        if not (directory / "config.json").is_file():
            raise FileNotFoundError(f"{directory} is not a MAN run (no config.json); make one "
                                    "with `memagent imagine --save-run DIR`")
        config = json.loads((directory / "config.json").read_text())
        policy = None
        if (directory / "policy.json").is_file():
            policy = QLearning.load(directory / "policy.json", env)
        long_term = GenerativeMemory.load(directory / "long_term.pt", device=device)
        agent = cls(env, policy=policy, memory=long_term, n_states=config["n_states"],
                    seed=config["seed"])
        agent.short_term = ClassQueueMemory.load(directory / "short_term.pt")
        return agent
