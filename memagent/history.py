"""Memory for any stable-baselines3 algorithm: an observation-history wrapper and a Hopfield extractor.

A plain ``PPO``, ``A2C`` or ``DQN`` gets a memory without a new algorithm:

1. :class:`ObservationHistory` (a ``VecEnvWrapper``) keeps each env's last ``window``
   observations and hands the policy all of them, with a validity flag per row, as one
   ``Box`` of shape ``(window, obs_dim + 1)``: rows run oldest to newest, the newest row is
   the current observation, the last column is 1 for a real observation of this episode and
   0 for padding (the start of an episode, before ``window`` steps have passed).
2. :class:`HopfieldExtractor` (an SB3 ``BaseFeaturesExtractor``) embeds every stored row,
   then reads them with one Universal-Hopfield retrieval (Millidge et al. 2022, eq. 2:
   similarity, separation, projection) whose query is the current observation:
   ``z = V softmax(beta K^T q)`` over the valid rows only. Its features are the current
   observation's embedding and the retrieved vector, concatenated.

Because the history is part of the observation, every SB3 buffer stores it: a DQN replay
buffer holds ``2 * buffer_size * window * (obs_dim + 1)`` values (observations and next
observations), and the memory reaches back ``window - 1`` steps at most. ``docs/history.md``
lists these limits.

::

    venv, policy_kwargs = with_memory(make_vec("memagent/TMaze-v0", 8), window=16)
    DQN("MlpPolicy", venv, policy_kwargs=policy_kwargs).learn(50_000)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper
from torch import nn

from memagent.memory.hopfield import retrieve

MAX_CATEGORIES = 4096
"""Largest ``n_codes * obs_dim`` for which :class:`HopfieldExtractor` embeds codes by default."""


class ObservationHistory(VecEnvWrapper):
    """Keep each env's last ``window`` observations; the policy sees all of them.

    The new observation space is a ``Box`` of shape ``(window, obs_dim + 1)`` and the base
    space's dtype (so ``uint8`` observations stay one byte in a replay buffer): row ``i`` holds
    the observation of ``window - 1 - i`` steps ago, the last column its validity flag.
    Padding rows are all zeros. Histories restart where an episode ends (SB3 autoreset: the
    observation returned with ``done`` is the first of the next episode, and
    ``infos[i]["terminal_observation"]`` becomes the stacked history that ends with the
    episode's last observation, so off-policy bootstrapping on truncation sees it too).

    :param venv: the vectorized environment; its observation space must be a 1-D ``Box`` or
        ``MultiDiscrete``.
    :param window: how many observations to keep, the current one included (>= 1); the memory
        reaches back ``window - 1`` steps.
    """

    def __init__(self, venv: VecEnv, window: int = 16) -> None:
        space = venv.observation_space
        if isinstance(space, spaces.MultiDiscrete) and len(space.shape) == 1:
            # categories 0..nvec-1 (memagent's symbolic gridworlds): a Box of integer codes,
            # which HopfieldExtractor embeds as categories
            space = spaces.Box(0, np.maximum(space.nvec - 1, 1), dtype=space.dtype)
        if not isinstance(space, spaces.Box) or len(space.shape) != 1:
            raise ValueError(
                f"ObservationHistory needs a 1-D Box or MultiDiscrete observation space, got "
                f"{space}; use obs_mode='symbolic' or wrap the env in "
                "gymnasium.wrappers.FlattenObservation"
            )
        if int(window) < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self.window = int(window)
        self.obs_dim = int(space.shape[0])
        low = np.zeros((self.window, self.obs_dim + 1), dtype=space.dtype)
        high = np.ones((self.window, self.obs_dim + 1), dtype=space.dtype)
        low[:, : self.obs_dim] = np.minimum(space.low, 0)  # padding rows are zeros
        high[:, : self.obs_dim] = np.maximum(space.high, 1)
        history_space = spaces.Box(low=low, high=high, dtype=space.dtype)
        super().__init__(venv, observation_space=history_space)
        n = self.num_envs
        # A ring over time shared by all envs (they step in lockstep); `_head` is the newest slot.
        self._data = np.zeros((n, self.window, self.obs_dim + 1), dtype=space.dtype)
        self._head = 0
        self.episode_steps = np.zeros(n, dtype=np.int64)
        """Steps taken in each env's current episode (0 right after a reset)."""

    def _ordered(self, envs: np.ndarray | slice = slice(None)) -> np.ndarray:
        """The ring of ``envs`` oldest to newest, as a new array."""
        order = (self._head + 1 + np.arange(self.window)) % self.window
        return self._data[envs][:, order]  # (n, W, D + 1), a copy

    def _write(self, obs: np.ndarray, envs: np.ndarray | slice = slice(None)) -> None:
        self._data[envs, self._head, : self.obs_dim] = obs
        self._data[envs, self._head, self.obs_dim] = 1

    def reset(self) -> np.ndarray:
        obs = self.venv.reset()
        self._data[:] = 0
        self._head = 0
        self.episode_steps[:] = 0
        self._write(obs)
        return self._ordered()

    def step_wait(self):
        obs, rewards, dones, infos = self.venv.step_wait()
        self._head = (self._head + 1) % self.window
        self._write(obs)  # over the oldest slot, which leaves every window
        self.episode_steps += 1
        done_envs = np.flatnonzero(dones)
        for i in done_envs:
            # Row `head` holds the next episode's first observation; the finished episode
            # ends with the terminal observation instead.
            terminal = infos[i].get("terminal_observation")
            if terminal is not None:
                self._write(terminal, i)
                infos[i] = dict(infos[i], terminal_observation=self._ordered(np.array([i]))[0])
            self._data[i] = 0
            self._write(obs[i], i)
            self.episode_steps[i] = 0
        return self._ordered(), rewards, dones, infos


class HopfieldExtractor(BaseFeaturesExtractor):
    """Read an :class:`ObservationHistory` with the current observation as the query.

    Every row ``x_j`` is embedded, ``e_j = MLP(x_j) + p_{age(j)}`` (a learned recency code
    ``p``), then ``k_j = W_K e_j`` and ``v_j = W_V e_j``; the query is ``q = W_Q e_now``.
    Retrieval is ``z = sum_j softmax_j(beta q.k_j) v_j`` over valid rows (padding is never
    attended). Features: ``[e_now, z]``, of size ``2 * embed_dim``.

    :param observation_space: the wrapper's ``Box(window, obs_dim + 1)``.
    :param embed_dim: size of the embeddings, keys, queries and values.
    :param hidden_dim: hidden size of the per-row embedding MLP.
    :param beta: inverse temperature of the softmax; ``None`` means ``1 / sqrt(embed_dim)``.
    :param recency: add the learned recency code ``p`` (which row is which age).
    :param categorical: read each observation entry as a category (a tile id) with its own
        learned embedding per position, the same as a linear layer on one-hot codes, instead of
        as a number; ``None``: when the observations are integers with at most
        ``MAX_CATEGORIES`` codes in all (symbolic gridworlds).
    """

    def __init__(
        self,
        observation_space: spaces.Box,
        embed_dim: int = 64,
        hidden_dim: int = 64,
        beta: float | None = None,
        recency: bool = True,
        categorical: bool | None = None,
    ) -> None:
        if not isinstance(observation_space, spaces.Box) or len(observation_space.shape) != 2:
            raise ValueError(
                f"HopfieldExtractor needs the Box(window, obs_dim + 1) of ObservationHistory, got "
                f"{observation_space}; wrap the VecEnv with memagent.history.ObservationHistory"
            )
        if embed_dim < 1 or hidden_dim < 1:
            raise ValueError(
                f"embed_dim and hidden_dim must be >= 1, got {embed_dim}, {hidden_dim}"
            )
        super().__init__(observation_space, features_dim=2 * embed_dim)
        window, width = observation_space.shape
        self.window, self.obs_dim = int(window), int(width) - 1
        self.beta = float(beta) if beta is not None else embed_dim**-0.5
        integers = np.issubdtype(observation_space.dtype, np.integer)
        # tile codes only for integer observations (a float Box may be unbounded: inf)
        n_codes = int(observation_space.high[:, : self.obs_dim].max()) + 1 if integers else 0
        if categorical is None:
            categorical = integers and n_codes * self.obs_dim <= MAX_CATEGORIES
        if categorical and not integers:
            raise ValueError(
                f"categorical=True needs integer observations, got {observation_space.dtype}; "
                "pass categorical=False"
            )
        self.n_codes = n_codes if categorical else None
        if categorical:
            # entry i with code c -> embedding row i * n_codes + c
            self.register_buffer("offsets", th.arange(self.obs_dim) * n_codes, persistent=False)
            first = nn.Embedding(self.obs_dim * n_codes, hidden_dim)
        else:
            first = nn.Linear(self.obs_dim, hidden_dim)
        self.first = first
        self.embed = nn.Sequential(nn.ReLU(), nn.Linear(hidden_dim, embed_dim))
        self.recency = nn.Parameter(th.zeros(self.window, embed_dim)) if recency else None
        self.query = nn.Linear(embed_dim, embed_dim)
        self.key = nn.Linear(embed_dim, embed_dim)
        self.value = nn.Linear(embed_dim, embed_dim)

    def forward(self, observations: th.Tensor, return_weights: bool = False):
        x, valid = observations[..., : self.obs_dim], observations[..., self.obs_dim] > 0.5
        if self.n_codes is not None:
            codes = x.long().clamp(0, self.n_codes - 1) + self.offsets  # (B, W, D)
            h = self.first(codes).sum(-2)  # (B, W, D, H) -> (B, W, H)
        else:
            h = self.first(x)  # (B, W, D) -> (B, W, H)
        e = self.embed(h)  # (B, W, H) -> (B, W, E)
        if self.recency is not None:
            e = e + self.recency
        now = e[:, -1]  # (B, E): the current observation
        q = self.query(now).unsqueeze(1)  # (B, E) -> (B, 1, E)
        out = retrieve(
            q,
            self.key(e),
            self.value(e),
            beta=self.beta,
            mask=valid.unsqueeze(1),
            return_weights=return_weights,
        )  # (B, 1, E) [and weights (B, 1, W)]
        z, weights = out if return_weights else (out, None)
        features = th.cat([now, z.squeeze(1)], dim=-1)  # (B, 2E)
        return (features, weights.squeeze(1)) if return_weights else features


def with_memory(
    venv: VecEnv, window: int = 16, **extractor_kwargs: Any
) -> tuple[ObservationHistory, dict[str, Any]]:
    """Give any SB3 algorithm a memory of the last ``window`` observations, in one call.

    :param venv: the vectorized environment (1-D ``Box`` or ``MultiDiscrete`` observations).
    :param window: observations kept per env, the current one included.
    :param extractor_kwargs: passed to :class:`HopfieldExtractor` (``embed_dim``, ``beta``, ...).
    :return: ``(wrapped_venv, policy_kwargs)``; use ``Algo("MlpPolicy", wrapped_venv,
        policy_kwargs=policy_kwargs)`` for ``PPO``, ``A2C`` or ``DQN``.
    """
    wrapped = ObservationHistory(venv, window=window)
    policy_kwargs = dict(
        features_extractor_class=HopfieldExtractor, features_extractor_kwargs=dict(extractor_kwargs)
    )
    return wrapped, policy_kwargs
