"""The rollout buffer of :class:`memagent.agents.memory_ppo.MemoryPPO`.

Everything is kept time-major, ``(n_steps, n_envs, ...)`` (Dict observations: a dict of such
tensors, one per key), as torch tensors on the algorithm's device (rewards, returns and
advantages too: a rollout from a device VecEnv never visits the host), and the memory state is
stored once per rollout per env (the state at the rollout's start), not per step.
Minibatches are subsets of envs with their full sequence (the same envs in every key), so
training recomputes the memory over the sequence from that stored state in one forward
(truncated back-propagation through the whole rollout). Returns and advantages are
GAE(lambda) (Schulman et al. 2016, eq. 16), as in SB3's ``RolloutBuffer``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import NamedTuple

import numpy as np
import torch as th

from memagent.memory.recurrent import State
from memagent.observations import Obs, map_obs


class MemoryRolloutSamples(NamedTuple):
    """One minibatch: ``b`` envs, the whole rollout of ``T`` steps each."""

    observations: Obs  # (T, b, *obs_shape), or a dict of them (Dict observations)
    actions: th.Tensor  # (T*b, *action_shape), time-major
    old_values: th.Tensor  # (T*b,)
    old_log_prob: th.Tensor  # (T*b,)
    advantages: th.Tensor  # (T*b,)
    returns: th.Tensor  # (T*b,)
    episode_starts: th.Tensor  # (T, b)
    memory_state: State  # the memory of these envs before step 0


class MemoryRolloutBuffer:
    """Time-major rollout storage with one memory state per env per rollout.

    :param n_steps: steps per env per rollout (``T``).
    :param n_envs: parallel envs (``B``).
    :param device: where the tensors live.
    :param gamma: discount factor.
    :param gae_lambda: the GAE ``lambda`` (bias/variance trade-off).
    """

    def __init__(self, n_steps: int, n_envs: int, device: th.device, gamma: float = 0.99,
                 gae_lambda: float = 0.95):
        self.n_steps, self.n_envs, self.device = n_steps, n_envs, device
        self.gamma, self.gae_lambda = gamma, gae_lambda
        self.observations: Obs | None = None
        self.actions: th.Tensor | None = None
        self.rewards = th.zeros(n_steps, n_envs, device=device)
        self.episode_starts = th.zeros(n_steps, n_envs, device=device)
        self.values_t = th.zeros(n_steps, n_envs, device=device)
        self.log_probs = th.zeros(n_steps, n_envs, device=device)
        self.returns = th.zeros(n_steps, n_envs, device=device)
        self.advantages = th.zeros(n_steps, n_envs, device=device)
        self.memory_state: State = ()
        self.pos = 0

    def reset(self, memory_state: State) -> None:
        """Start a rollout from ``memory_state`` (stored detached: its gradient ends here)."""
        self.memory_state = tuple(s.detach() for s in memory_state)
        self.pos = 0

    def add(self, obs: Obs, actions: th.Tensor, rewards: th.Tensor | np.ndarray,
            episode_starts: th.Tensor, values: th.Tensor, log_probs: th.Tensor) -> None:
        """Store one step of every env (``obs (B, ...)`` or a dict of them, ``values (B, 1)``, ...)."""
        if self.pos == 0:  # (re)allocate at a rollout's start: (B, ...) -> (T, B, ...)
            self.observations = _match(self.observations, obs, self._storage)
            self.actions = _match(self.actions, actions, self._storage)
        t = self.pos
        if isinstance(obs, dict):
            for key, value in obs.items():
                self.observations[key][t] = value
        else:
            self.observations[t] = obs
        self.actions[t] = actions
        self.rewards[t] = th.as_tensor(rewards, device=self.device)
        self.episode_starts[t] = episode_starts
        self.values_t[t] = values.flatten()
        self.log_probs[t] = log_probs
        self.pos += 1

    def _storage(self, x: th.Tensor) -> th.Tensor:
        """Zeros ``(n_steps, *x.shape)`` like ``x``, on the buffer's device."""
        return th.zeros(self.n_steps, *x.shape, dtype=x.dtype, device=self.device)

    @property
    def full(self) -> bool:
        return self.pos == self.n_steps

    @property
    def values(self) -> th.Tensor:
        """``(T, B)`` value estimates of the rollout (on the device)."""
        return self.values_t

    def compute_returns_and_advantage(self, last_values: th.Tensor,
                                      dones: th.Tensor | np.ndarray) -> None:
        """GAE(lambda) advantages and lambda-returns, bootstrapped from ``last_values (B, 1)``,
        on the buffer's device (``dones (B,)``: the episode starts after the last step)."""
        values, starts = self.values_t, self.episode_starts
        next_values = last_values.flatten()
        next_non_terminal = 1.0 - th.as_tensor(dones, dtype=th.float32, device=self.device)
        last_gae = th.zeros(self.n_envs, device=self.device)
        for t in reversed(range(self.n_steps)):
            if t < self.n_steps - 1:
                next_non_terminal, next_values = 1.0 - starts[t + 1], values[t + 1]
            delta = self.rewards[t] + self.gamma * next_values * next_non_terminal - values[t]
            last_gae = delta + self.gamma * self.gae_lambda * next_non_terminal * last_gae
            self.advantages[t] = last_gae
        self.returns = self.advantages + values

    def get(self, envs_per_batch: int,
            select_state: Callable[[State, th.Tensor], State]) -> Iterator[MemoryRolloutSamples]:
        """Minibatches of ``envs_per_batch`` envs in a random order, each its full sequence.

        :param select_state: picks the envs ``index`` out of a memory state (the policy's
            ``select_state``; the batch dimension differs between cores).
        """
        assert self.full, "the rollout is not complete"
        T = self.n_steps
        for start in range(0, self.n_envs, envs_per_batch):
            if start == 0:
                order = th.randperm(self.n_envs, device=self.device)
            idx = order[start:start + envs_per_batch]
            b = len(idx)

            def flat(x: th.Tensor, idx=idx, b=b) -> th.Tensor:
                return x.index_select(1, idx).reshape(T * b, *x.shape[2:])  # (T, B, ...) -> (T*b, ...)

            yield MemoryRolloutSamples(
                # index_select, not x[:, idx]: 5x faster on a (T, B, 3, 64, 64) uint8 screen
                observations=map_obs(lambda x, idx=idx: x.index_select(1, idx), self.observations),
                actions=flat(self.actions),
                old_values=flat(self.values_t),
                old_log_prob=flat(self.log_probs),
                advantages=flat(self.advantages),
                returns=flat(self.returns),
                episode_starts=self.episode_starts[:, idx],
                memory_state=select_state(self.memory_state, idx),
            )


def _match(stored: Obs | None, step: Obs, storage: Callable[[th.Tensor], th.Tensor]) -> Obs:
    """``stored`` where each of its tensors fits a step like ``step`` (dtype and shape), else
    fresh storage for it."""
    def fits(x: th.Tensor | None, y: th.Tensor) -> bool:
        return x is not None and x.dtype == y.dtype and x.shape[1:] == y.shape

    if isinstance(step, dict):
        stored = stored if isinstance(stored, dict) else {}
        return {k: stored[k] if fits(stored.get(k), v) else storage(v) for k, v in step.items()}
    return stored if isinstance(stored, th.Tensor) and fits(stored, step) else storage(step)
