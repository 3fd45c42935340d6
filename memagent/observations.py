"""Observations of any kind a gymnasium env gives, for the memory policies.

A :class:`memagent.policies.MemoryActorCriticPolicy` takes ``Box``, ``Discrete``,
``MultiDiscrete`` and ``MultiBinary`` observations as one tensor, and a ``Dict`` of them as a
dict of tensors read by SB3's ``CombinedExtractor`` (``"MultiInputPolicy"``), as SB3's own
policies do. This module holds what the policy and MemoryPPO's rollout buffer need for both:

- :func:`check_observation_space`: the space and the features extractor fit, or a
  ``ValueError`` that names the fix;
- :class:`OneHot`: SB3's one-hot encoding of a ``MultiDiscrete`` in one scatter, and
  :func:`preprocess`, SB3's ``preprocess_obs`` with it;
- :func:`map_obs` and :func:`obs_batch_size`: a tensor op applied to one tensor or to every
  tensor of a dict (reshapes, indexing, storage).
"""

from __future__ import annotations

from collections.abc import Callable

import torch as th
from gymnasium import spaces
from stable_baselines3.common.preprocessing import preprocess_obs
from stable_baselines3.common.torch_layers import CombinedExtractor, FlattenExtractor, NatureCNN
from torch import nn

Obs = th.Tensor | dict[str, th.Tensor]
SPACES = (spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)
_NAMES = "Box, Discrete, MultiDiscrete or MultiBinary"


def check_observation_space(space: spaces.Space, features_extractor_class: type) -> None:
    """Raise a ``ValueError`` naming the fix unless ``features_extractor_class`` can read
    ``space``: one of :data:`SPACES` with a one-tensor extractor, or a ``Dict`` of them with a
    dict extractor (``CombinedExtractor``, SB3's and memagent's ``"MultiInputPolicy"``).
    A ``MultiDiscrete`` must have a 1-D ``nvec`` (as SB3's preprocessing needs)."""
    for key, sub in (space.spaces.items() if isinstance(space, spaces.Dict) else [(None, space)]):
        if isinstance(sub, spaces.MultiDiscrete) and sub.nvec.ndim > 1:
            where = "observation_space" if key is None else f"observation_space[{key!r}]"
            raise ValueError(
                f"{where} is a MultiDiscrete with nvec of shape {sub.nvec.shape}; SB3's "
                "preprocessing and predict() take a 1-D nvec: observe "
                "spaces.MultiDiscrete(nvec.ravel()) (reshape the observation in an "
                "ObservationWrapper)")
    one_tensor = issubclass(features_extractor_class, (FlattenExtractor, NatureCNN)) or getattr(
        features_extractor_class, "reads_one_tensor", False)
    if isinstance(space, spaces.Dict):
        for key, sub in space.spaces.items():
            if not isinstance(sub, SPACES):
                raise ValueError(
                    f"observation_space[{key!r}] is a {type(sub).__name__}; the entries of a Dict "
                    f"observation must be {_NAMES}: flatten that entry "
                    "(gymnasium.spaces.flatten_space / flatten) or split it into entries")
        if one_tensor:
            raise ValueError(
                f"Dict observations need a features extractor that reads a dict, not "
                f"{features_extractor_class.__name__}: use the policy \"MultiInputPolicy\" "
                "(SB3's CombinedExtractor in front of the memory)")
        return
    if not isinstance(space, SPACES):
        raise ValueError(
            f"the memory policies take {_NAMES} observations, or a Dict of them, got "
            f"{type(space).__name__}; wrap the env in gymnasium.wrappers.FlattenObservation, or "
            "give it a Dict observation space and use \"MultiInputPolicy\"")
    if issubclass(features_extractor_class, CombinedExtractor):
        raise ValueError(
            f"\"MultiInputPolicy\" (CombinedExtractor) reads Dict observations, got "
            f"{type(space).__name__}; use \"MlpPolicy\" (or \"CnnPolicy\" for images)")


class OneHot(nn.Module):
    """SB3's one-hot encoding of a ``MultiDiscrete`` observation, in one scatter.

    SB3's ``preprocess_obs`` encodes one dimension at a time (294 us for 8 envs x 10 dims);
    one scatter gives the same float tensor (9.5 us). ``obs (N, *nvec.shape)`` of category
    ids -> ``(N, sum(nvec))``.
    """

    def __init__(self, space: spaces.MultiDiscrete):
        super().__init__()
        nvec = th.as_tensor(space.nvec.ravel(), dtype=th.long)
        self.register_buffer("offsets", th.cumsum(nvec, 0) - nvec, persistent=False)
        self.size = int(nvec.sum())

    def forward(self, obs: th.Tensor) -> th.Tensor:
        flat = obs.reshape(obs.shape[0], -1).long() + self.offsets  # (N, *nvec.shape) -> (N, D)
        return th.zeros(obs.shape[0], self.size, device=obs.device).scatter_(1, flat, 1.0)


def one_hot_encoders(space: spaces.Space) -> dict[str | None, OneHot]:
    """A :class:`OneHot` for every ``MultiDiscrete`` in ``space``: key ``None`` for the space
    itself, the Dict's keys for its entries."""
    entries = space.spaces.items() if isinstance(space, spaces.Dict) else [(None, space)]
    return {key: OneHot(sub) for key, sub in entries if isinstance(sub, spaces.MultiDiscrete)}


def preprocess(obs: Obs, space: spaces.Space, encoders: dict[str | None, OneHot],
               normalize_images: bool = True, raw_images: bool = False,
               ids: bool = False) -> Obs:
    """SB3's ``preprocess_obs`` (one-hot categories, images to [0, 1], floats), with the
    ``MultiDiscrete`` entries encoded by ``encoders`` (from :func:`one_hot_encoders`).

    :param raw_images: leave a ``uint8`` image observation as it is (for an extractor that
        scales it itself, such as :class:`memagent.extractors.ScreenCNN`); only when
        ``normalize_images``, i.e. where SB3 would divide by 255.
    :param ids: leave a ``MultiDiscrete`` observation as category ids (for an extractor that
        embeds them, such as :class:`memagent.extractors.CategoricalEmbedding`).
    """
    if ids and not isinstance(obs, dict):
        return obs
    if raw_images and normalize_images and not isinstance(obs, dict) and obs.dtype == th.uint8:
        return obs
    if isinstance(obs, dict):
        return {key: encoders[key](value) if key in encoders
                else preprocess_obs(value, space[key], normalize_images=normalize_images)
                for key, value in obs.items()}
    if None in encoders:
        return encoders[None](obs)
    return preprocess_obs(obs, space, normalize_images=normalize_images)


def map_obs(fn: Callable[[th.Tensor], th.Tensor], obs: Obs) -> Obs:
    """``fn`` applied to ``obs``, or to every tensor of a dict observation."""
    return {key: fn(value) for key, value in obs.items()} if isinstance(obs, dict) else fn(obs)


def obs_batch_size(obs: Obs) -> int:
    """The leading dimension of ``obs`` (of any tensor of a dict observation)."""
    return next(iter(obs.values())).shape[0] if isinstance(obs, dict) else obs.shape[0]
