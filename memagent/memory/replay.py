"""Short-term memory of Memory Association Networks (Kim et al., MAN §3.1, eq. 1).

One bounded FIFO queue per class (object number, or a gridworld's ``state_id``); a batch is
sampled by drawing classes uniformly among the non-empty queues, then items uniformly within
the class, so the imbalance of the stream the agent happens to see is removed. The class
number is also returned as a one-hot key vector (eq. 1), the label the long-term memories
(:mod:`memagent.memory.generative`) are conditioned on.

- :class:`ClassQueueMemory`: the queues, as preallocated torch storage on any device.
- :class:`ClassBalancedReplayBuffer`: the same queues inside stable-baselines3, a drop-in
  ``replay_buffer_class`` for ``DQN`` (and any off-policy algorithm), keyed by a function of
  the transition (``info["state_id"]`` when the env gives one, else the action).

Adding a batch never loops over items in Python: a stable sort of the keys gives, for every
item, its rank among the batch's items of the same class (a "cumcount"), hence its slot
``class * capacity + (head[class] + rank) % capacity``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.type_aliases import ReplayBufferSamples

from memagent.utils import atomic_write


class ClassQueueSamples(NamedTuple):
    """A balanced batch: ``items`` (B, *item_shape), ``keys`` (B,) int64, ``onehot`` (B, C)."""

    items: th.Tensor
    keys: th.Tensor
    onehot: th.Tensor


def queue_slots(keys: np.ndarray, head: np.ndarray, capacity: int, n_classes: int):
    """Where a batch of keyed items goes in per-class rings of ``capacity`` slots.

    :param keys: (B,) int class of each item, in arrival order.
    :param head: (C,) next write position of each ring (the oldest item once full).
    :return: ``(src, dst, per_class)``: the indices of the items to write (``None``: all of
        them, in order; otherwise an item a later item of the same batch would overwrite is
        dropped), their flat slots ``class * capacity + position``, and the (C,) number of
        items per class.
    """
    if len(keys) == 1:                                            # the n_envs=1 hot path
        per_class = np.zeros(n_classes, dtype=np.int64)
        per_class[keys[0]] = 1
        return None, keys * capacity + head[keys], per_class
    per_class = np.bincount(keys, minlength=n_classes)            # (C,)
    order = np.argsort(keys, kind="stable")                       # (B,) arrival order kept per class
    starts = np.cumsum(per_class) - per_class                     # (C,) first sorted index of class
    rank = np.empty_like(order)
    rank[order] = np.arange(len(keys)) - starts[keys[order]]      # (B,) cumcount within class
    dst = keys * capacity + (head[keys] + rank) % capacity        # (B,) in arrival order
    if per_class.max() <= capacity:
        return None, dst, per_class
    src = np.flatnonzero(rank >= per_class[keys] - capacity)      # only the newest `capacity`
    return src, dst[src], per_class


def _check_keys(keys, n_classes: int, name: str = "keys") -> np.ndarray:
    keys = np.asarray(keys.cpu() if isinstance(keys, th.Tensor) else keys)
    if keys.ndim != 1 or keys.dtype.kind not in "iu":
        if keys.ndim == 1 and keys.dtype.kind == "f" and np.all(keys == np.round(keys)):
            keys = keys.astype(np.int64)
        else:
            raise ValueError(f"{name} must be a 1-D array of integer class numbers, got "
                             f"shape {keys.shape} dtype {keys.dtype}")
    if keys.size and (keys.min() < 0 or keys.max() >= n_classes):
        bad = keys[(keys < 0) | (keys >= n_classes)][0]
        raise ValueError(f"{name} must lie in [0, n_classes={n_classes}), got {int(bad)}; "
                         "raise n_classes or fix the key function")
    return keys.astype(np.int64, copy=False)


class ClassQueueMemory:
    """One FIFO queue of at most ``capacity`` items per class, sampled class-balanced.

    :param n_classes: number of classes C (object numbers / state ids ``0 .. C-1``).
    :param capacity: maximum items per class; the oldest is dropped first.
    :param item_shape: shape of one item, e.g. ``(64, 64, 3)`` for a screen.
    :param dtype: storage dtype (``torch.uint8`` keeps screens small).
    :param device: where the storage lives (``"cpu"``, ``"cuda"``...); samples come from there.
    :param seed: seed of the sampling generator.
    """

    def __init__(self, n_classes: int, capacity: int, item_shape: tuple[int, ...],
                 dtype: th.dtype = th.float32, device: str | th.device = "cpu",
                 seed: int | None = None):
        if n_classes < 1:
            raise ValueError(f"n_classes must be >= 1, got {n_classes}")
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.n_classes, self.capacity = int(n_classes), int(capacity)
        self.item_shape = tuple(int(s) for s in item_shape)
        self.device = th.device(device)
        self.storage = th.zeros((n_classes * capacity, *self.item_shape), dtype=dtype,
                                device=self.device)                   # (C*K, *item_shape)
        self.head = np.zeros(n_classes, dtype=np.int64)   # next write slot per class
        self.counts = np.zeros(n_classes, dtype=np.int64)  # items held per class
        self.seen = np.zeros(n_classes, dtype=np.int64)    # items ever added per class
        self._base = np.zeros(0, dtype=np.int64)   # first slot of each non-empty class
        self._held = np.zeros(0, dtype=np.int64)   # items held by each non-empty class
        self.seed(seed)

    def seed(self, seed: int | None) -> None:
        """Reseed the sampling generator (``None``: from the OS)."""
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return int(self.counts.sum())

    @property
    def nonempty(self) -> np.ndarray:
        """Class numbers with at least one item (sorted)."""
        return np.flatnonzero(self.counts)

    def add(self, keys, items) -> None:
        """File a batch of items under their classes.

        :param keys: (B,) class numbers in ``[0, n_classes)``.
        :param items: (B, *item_shape) numpy array or tensor.
        """
        keys = _check_keys(keys, self.n_classes)
        items = th.as_tensor(items)
        if tuple(items.shape) != (len(keys), *self.item_shape):
            raise ValueError(f"items must have shape (B={len(keys)}, *item_shape="
                             f"{self.item_shape}), got {tuple(items.shape)}")
        src, dst, per_class = queue_slots(keys, self.head, self.capacity, self.n_classes)
        if src is not None:
            items = items[th.from_numpy(src).to(items.device)]
        self.storage[th.from_numpy(dst).to(self.device)] = items.to(self.device, self.storage.dtype)
        self.head = (self.head + per_class) % self.capacity
        self.counts = np.minimum(self.counts + per_class, self.capacity)
        self.seen += per_class
        self._update_index()

    def _update_index(self) -> None:
        nonempty = np.flatnonzero(self.counts)
        self._base, self._held = nonempty * self.capacity, self.counts[nonempty]

    def sample(self, batch_size: int) -> ClassQueueSamples:
        """Classes uniformly among the non-empty queues, then items uniformly within the class.

        :raises ValueError: the memory is empty.
        """
        if len(self._held) == 0:
            raise ValueError("cannot sample from an empty ClassQueueMemory: add(keys, items) first")
        # one uniform draw per item: its integer part picks the class, its fraction the item
        u = self.rng.random(batch_size) * len(self._held)
        j = u.astype(np.int64)
        slots = self._base[j] + ((u - j) * self._held[j]).astype(np.int64)   # (B,)
        keys_np = slots // self.capacity
        keys = th.from_numpy(keys_np).to(self.device)                         # (B,)
        if self.device.type == "cpu":  # np.take on the shared memory beats torch indexing
            items = th.from_numpy(np.take(self.storage.numpy(), slots, axis=0))
        else:
            items = self.storage.index_select(0, th.from_numpy(slots).to(self.device))
        onehot = th.zeros(batch_size, self.n_classes, device=self.device)
        onehot[th.arange(batch_size, device=self.device), keys] = 1.0         # (B, C)
        return ClassQueueSamples(items, keys, onehot)

    def items_of(self, key: int) -> th.Tensor:
        """The items of class ``key``, oldest first: (count, *item_shape)."""
        key = int(_check_keys([key], self.n_classes, "key")[0])
        n = int(self.counts[key])
        pos = (self.head[key] - n + np.arange(n)) % self.capacity
        return self.storage[th.as_tensor(key * self.capacity + pos, device=self.device)]

    # -- persistence -------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"n_classes": self.n_classes, "capacity": self.capacity,
                "item_shape": self.item_shape, "dtype": str(self.storage.dtype).split(".")[-1],
                "storage": self.storage.cpu(), "head": self.head.copy(),
                "counts": self.counts.copy(), "seen": self.seen.copy(),
                "rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name in ("n_classes", "capacity", "item_shape"):
            if tuple(np.atleast_1d(state[name])) != tuple(np.atleast_1d(getattr(self, name))):
                raise ValueError(f"state has {name}={state[name]}, this memory has "
                                 f"{getattr(self, name)}: build it with the same {name}")
        self.storage.copy_(state["storage"].to(self.device))
        self.head, self.counts = np.array(state["head"]), np.array(state["counts"])
        self.seen = np.array(state["seen"])
        self.rng.bit_generator.state = state["rng"]
        self._update_index()

    def save(self, path: str | Path) -> Path:
        """Write the memory (storage, queues, generator) to ``path`` atomically."""
        return atomic_write(path, lambda tmp: th.save(self.state_dict(), tmp))

    @classmethod
    def load(cls, path: str | Path, device: str | th.device = "cpu") -> ClassQueueMemory:
        state = th.load(path, map_location="cpu", weights_only=False)
        mem = cls(state["n_classes"], state["capacity"], state["item_shape"],
                  dtype=getattr(th, state["dtype"]), device=device)
        mem.load_state_dict(state)
        return mem


class UniformReplayMemory(ClassQueueMemory):
    """The peer MAN's queues replace: one FIFO of ``capacity`` items in all, sampled uniformly
    (a DQN replay memory), with the same ``add``/``sample`` API and keyed samples.

    :param capacity: items held in all (not per class).
    """

    def __init__(self, n_classes: int, capacity: int, item_shape: tuple[int, ...], **kwargs):
        super().__init__(1, capacity, item_shape, **kwargs)
        self.n_classes = int(n_classes)
        self.keys = np.zeros(capacity, dtype=np.int64)

    def add(self, keys, items) -> None:
        keys = _check_keys(keys, self.n_classes)
        items = th.as_tensor(items)
        if tuple(items.shape) != (len(keys), *self.item_shape):
            raise ValueError(f"items must have shape (B={len(keys)}, *item_shape="
                             f"{self.item_shape}), got {tuple(items.shape)}")
        keep = slice(max(len(keys) - self.capacity, 0), None)    # the newest `capacity`
        slots = (self.head[0] + np.arange(len(keys))[keep]) % self.capacity
        self.keys[slots] = keys[keep]
        self.storage[th.as_tensor(slots, device=self.device)] = items[keep].to(
            self.device, self.storage.dtype)
        self.head[0] = (self.head[0] + len(keys)) % self.capacity
        self.counts[0] = min(self.counts[0] + len(keys), self.capacity)
        self.seen[0] += len(keys)

    @property
    def class_counts(self) -> np.ndarray:
        """(C,) items held per class."""
        return np.bincount(self.keys[:self.counts[0]], minlength=self.n_classes)

    def sample(self, batch_size: int) -> ClassQueueSamples:
        if self.counts[0] == 0:
            raise ValueError("cannot sample from an empty UniformReplayMemory: add first")
        idx = self.rng.integers(0, int(self.counts[0]), size=batch_size)
        keys = th.from_numpy(self.keys[idx]).to(self.device)
        return ClassQueueSamples(self.storage[th.from_numpy(idx).to(self.device)], keys,
                                 th.nn.functional.one_hot(keys, self.n_classes).float())


KeyFn = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, list], np.ndarray]


def state_id_or_action(obs, next_obs, action, reward, done, infos) -> np.ndarray:
    """Default key: ``info["state_id"]`` when the env gives one, else the (first) action.

    ``infos`` are what ``env.step`` returned, so the state id is that of the state the
    transition *reaches* (``next_obs``), the screen a MAN agent files under it.
    """
    if infos and all("state_id" in info for info in infos):
        return np.fromiter((info["state_id"] for info in infos), dtype=np.int64, count=len(infos))
    return np.asarray(action).reshape(len(infos), -1)[:, 0].astype(np.int64)


class ClassBalancedReplayBuffer(ReplayBuffer):
    """SB3 ``ReplayBuffer`` made of one FIFO queue per class, sampled class-balanced (MAN §3.1).

    Pass it to any off-policy algorithm::

        DQN("MlpPolicy", env, replay_buffer_class=ClassBalancedReplayBuffer,
            replay_buffer_kwargs={"n_classes": env.unwrapped.n_states})

    The ``buffer_size`` transitions are split into ``n_classes`` queues of
    ``buffer_size // n_classes``. A transition's class is ``key_fn(obs, next_obs, action,
    reward, done, infos)`` -> (n_envs,) ints; the default is ``info["state_id"]`` (the state
    reached, which gymnasium reports) when the env gives one, else the action.

    :param n_classes: number of classes; defaults to ``action_space.n`` (keyed by action).
    :param key_fn: the key of each env's transition; see :func:`state_id_or_action`.
    Other parameters as SB3's ``ReplayBuffer`` (``optimize_memory_usage`` is not supported).
    """

    def __init__(self, buffer_size: int, observation_space: spaces.Space,
                 action_space: spaces.Space, device: th.device | str = "auto", n_envs: int = 1,
                 optimize_memory_usage: bool = False, handle_timeout_termination: bool = True,
                 n_classes: int | None = None, key_fn: KeyFn | None = None):
        if optimize_memory_usage:
            raise ValueError("ClassBalancedReplayBuffer does not support "
                             "optimize_memory_usage=True: leave it False")
        if n_classes is None:
            if not isinstance(action_space, spaces.Discrete):
                raise ValueError("n_classes is required unless the action space is Discrete "
                                 "(pass replay_buffer_kwargs={'n_classes': ...})")
            n_classes = int(action_space.n)
        if buffer_size < n_classes:
            raise ValueError(f"buffer_size={buffer_size} must be >= n_classes={n_classes} "
                             "(one queue of buffer_size // n_classes per class)")
        super().__init__(buffer_size, observation_space, action_space, device, n_envs,
                         optimize_memory_usage=False,
                         handle_timeout_termination=handle_timeout_termination)
        self.n_classes = int(n_classes)
        self.capacity = (self.buffer_size * self.n_envs) // self.n_classes
        self.key_fn = key_fn or state_id_or_action
        self.head = np.zeros(self.n_classes, dtype=np.int64)
        self.counts = np.zeros(self.n_classes, dtype=np.int64)
        self._nonempty = np.zeros(0, dtype=np.int64)
        self._base = np.zeros(0, dtype=np.int64)   # first slot of each non-empty class
        self._held = np.zeros(0, dtype=np.int64)   # items held by each non-empty class
        self._views: dict[str, np.ndarray] = {}
        self._n_full = 0  # queues at capacity

    def _flat(self, name: str) -> np.ndarray:
        """A (S*E, ...) view of storage array ``name`` (S, E, ...); cached, never pickled."""
        view = self._views.get(name)
        if view is None:
            arr = getattr(self, name)
            view = self._views[name] = arr.reshape(self.buffer_size * self.n_envs, *arr.shape[2:])
        return view

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_views"] = {}  # views would unpickle as copies
        return state

    def add(self, obs, next_obs, action, reward, done, infos: list[dict[str, Any]]) -> None:
        keys = _check_keys(np.asarray(self.key_fn(obs, next_obs, action, reward, done, infos)),
                           self.n_classes, "key_fn(...)")
        if keys.shape != (self.n_envs,):
            raise ValueError(f"key_fn must return one key per env, shape ({self.n_envs},), "
                             f"got {keys.shape}")
        src, dst, per_class = queue_slots(keys, self.head, self.capacity, self.n_classes)
        n = self.n_envs
        src = slice(None) if src is None else src
        obs = np.asarray(obs).reshape(n, *self.obs_shape)
        next_obs = np.asarray(next_obs).reshape(n, *self.obs_shape)
        self._flat("observations")[dst] = obs[src]
        self._flat("next_observations")[dst] = next_obs[src]
        self._flat("actions")[dst] = np.asarray(action).reshape(n, self.action_dim)[src]
        self._flat("rewards")[dst] = np.asarray(reward).reshape(n)[src]
        self._flat("dones")[dst] = np.asarray(done).reshape(n)[src]
        if self.handle_timeout_termination:
            timeouts = np.array([info.get("TimeLimit.truncated", False) for info in infos])
            self._flat("timeouts")[dst] = timeouts[src]
        self.head += per_class
        self.head %= self.capacity
        if self._n_full < self.n_classes:  # queues still filling: keep the sampling index fresh
            np.minimum(self.counts + per_class, self.capacity, out=self.counts)
            self._nonempty = np.flatnonzero(self.counts)
            self._base, self._held = self._nonempty * self.capacity, self.counts[self._nonempty]
            self._n_full = int((self.counts == self.capacity).sum())
            self.full = self._n_full == self.n_classes

    def size(self) -> int:
        """Transitions held (all classes, all envs); ``pos`` is not used by this buffer."""
        return int(self.counts.sum())

    def reset(self) -> None:
        super().reset()
        self.head[:] = 0
        self.counts[:] = 0
        self._nonempty = np.zeros(0, dtype=np.int64)
        self._base, self._held = self._nonempty.copy(), self._nonempty.copy()
        self._n_full = 0

    def sample(self, batch_size: int, env=None) -> ReplayBufferSamples:
        """Classes uniformly among the non-empty queues, then transitions uniformly within."""
        if len(self._nonempty) == 0:
            raise ValueError("cannot sample from an empty ClassBalancedReplayBuffer: "
                             "collect transitions first (learning_starts >= 1)")
        # one uniform draw per item: its integer part picks the class, its fraction the item
        u = np.random.random(batch_size) * len(self._nonempty)
        j = u.astype(np.int64)
        within = ((u - j) * self._held[j]).astype(np.int64)
        return self._get_flat_samples(self._base[j] + within, env)

    def _get_flat_samples(self, inds: np.ndarray, env=None) -> ReplayBufferSamples:
        if env is None:  # np.take along rows, then share the result with torch: one copy
            take = lambda name: th.from_numpy(np.take(self._flat(name), inds, axis=0))  # noqa: E731
            dones = take("dones") * (1 - take("timeouts"))
            data = (take("observations"), take("actions"), take("next_observations"),
                    dones.reshape(-1, 1), take("rewards").reshape(-1, 1))
            return ReplayBufferSamples(*(x.to(self.device) for x in data))
        dones = self._flat("dones")[inds] * (1 - self._flat("timeouts")[inds])
        data = (self._normalize_obs(self._flat("observations")[inds], env),
                self._flat("actions")[inds],
                self._normalize_obs(self._flat("next_observations")[inds], env),
                dones.reshape(-1, 1),
                self._normalize_reward(self._flat("rewards")[inds].reshape(-1, 1), env))
        return ReplayBufferSamples(*tuple(map(self.to_torch, data)))
