"""Tabular Q-learning for the gridworlds (Watkins; the behaviour policy of MAN §4.2).

``Q(s, a) += learning_rate * (r + gamma * max_a' Q(s', a') * (1 - terminated) - Q(s, a))``,
epsilon-greedy with ties broken at random. A state is ``info["state_id"]`` when the env gives
one (``memagent/Screens-v0``), else the observation's bytes, so any env with a discrete action
space and a small reachable state set works.
"""

from __future__ import annotations

import json
from collections.abc import Hashable
from pathlib import Path

import gymnasium as gym
import numpy as np

from memagent.utils import atomic_write


class QLearning:
    """Tabular, epsilon-greedy Q-learning on one gymnasium env.

    :param env: a gymnasium env with a ``Discrete`` action space.
    :param learning_rate: step size of the update.
    :param gamma: discount factor.
    :param epsilon: exploration rate while learning (and in ``predict`` unless deterministic).
    :param seed: seeds the env (first reset), its action space and the exploration.
    """

    def __init__(self, env: gym.Env, learning_rate: float = 0.5, gamma: float = 0.95,
                 epsilon: float = 0.2, seed: int | None = None):
        if not isinstance(env.action_space, gym.spaces.Discrete):
            raise ValueError(f"QLearning needs a Discrete action space, got {env.action_space}")
        if not 0 < learning_rate <= 1 or not 0 <= gamma <= 1 or not 0 <= epsilon <= 1:
            raise ValueError("need 0 < learning_rate <= 1, 0 <= gamma <= 1, 0 <= epsilon <= 1, "
                             f"got {learning_rate}, {gamma}, {epsilon}")
        self.env, self.n_actions = env, int(env.action_space.n)
        self.learning_rate, self.gamma, self.epsilon, self.seed = learning_rate, gamma, epsilon, seed
        self.q: dict[Hashable, np.ndarray] = {}
        self.rng = np.random.default_rng(seed)
        self.num_timesteps, self.episode_returns = 0, []
        self._seeded = seed is None
        if seed is not None:
            env.action_space.seed(seed)

    @staticmethod
    def state_key(obs, info: dict | None = None) -> Hashable:
        """``info["state_id"]`` if present, else the observation's bytes."""
        if info and "state_id" in info:
            return int(info["state_id"])
        return np.asarray(obs).tobytes()

    def values(self, key: Hashable) -> np.ndarray:
        """Q-values of a state key (zeros for a state never met)."""
        if key not in self.q:
            self.q[key] = np.zeros(self.n_actions)
        return self.q[key]

    def _greedy(self, key: Hashable) -> int:
        v = self.values(key)
        return int(self.rng.choice(np.flatnonzero(v == v.max())))

    def predict(self, obs, info: dict | None = None, deterministic: bool = True,
                epsilon: float | None = None) -> int:
        """The action for ``obs`` (with ``info``, where the state id lives)."""
        eps = 0.0 if deterministic else (self.epsilon if epsilon is None else epsilon)
        if eps and self.rng.random() < eps:
            return int(self.rng.integers(self.n_actions))
        return self._greedy(self.state_key(obs, info))

    def _reset(self):
        if not self._seeded:
            self._seeded = True
            return self.env.reset(seed=self.seed)
        return self.env.reset()

    def learn(self, total_timesteps: int) -> QLearning:
        """Run ``total_timesteps`` env steps of epsilon-greedy Q-learning."""
        obs, info = self._reset()
        ret = 0.0
        for _ in range(int(total_timesteps)):
            key = self.state_key(obs, info)
            action = self.predict(obs, info, deterministic=False)
            obs, reward, terminated, truncated, info = self.env.step(action)
            nxt = self.values(self.state_key(obs, info))
            target = reward + (0.0 if terminated else self.gamma * nxt.max())
            q = self.values(key)
            q[action] += self.learning_rate * (target - q[action])
            ret += reward
            self.num_timesteps += 1
            if terminated or truncated:
                self.episode_returns.append(ret)
                obs, info = self._reset()
                ret = 0.0
        return self

    def save(self, path: str | Path) -> Path:
        """JSON of the hyperparameters and the table (int state ids or hex observation bytes)."""
        table = {(f"id:{k}" if isinstance(k, int) else f"obs:{k.hex()}"): v.tolist()
                 for k, v in self.q.items()}
        payload = {"learning_rate": self.learning_rate, "gamma": self.gamma,
                   "epsilon": self.epsilon, "seed": self.seed,
                   "num_timesteps": self.num_timesteps, "q": table}
        return atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(payload)))

    @classmethod
    def load(cls, path: str | Path, env: gym.Env) -> QLearning:
        payload = json.loads(Path(path).read_text())
        agent = cls(env, payload["learning_rate"], payload["gamma"], payload["epsilon"],
                    payload["seed"])
        agent.num_timesteps = payload["num_timesteps"]
        for k, v in payload["q"].items():
            kind, val = k.split(":", 1)
            agent.q[int(val) if kind == "id" else bytes.fromhex(val)] = np.array(v)
        return agent
