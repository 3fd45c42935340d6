"""Features extractors for memagent's observations (SB3 ``BaseFeaturesExtractor``).

:class:`CategoricalEmbedding` reads a ``MultiDiscrete`` observation (the symbolic
gridworlds' tile ids and heading) as categories: one learnt vector per (entry, category),
concatenated. It is the memory policies' default for ``MultiDiscrete`` observations.

:class:`ScreenCNN` is sized for the gridworlds' ``obs_mode="pixels"`` screens: 64 x 64 x 3,
an egocentric view of 3 x 3 tiles of ~21 px each, flat colours and a sprite for the agent.
SB3's ``NatureCNN`` (Mnih et al. 2015) was built for 84 x 84 Atari frames: three convolutions
(32-64-64 channels) and a 512-unit layer, ~3.7M multiply-adds per 64 x 64 screen. A screen
of nine flat tiles needs far less: one convolution whose kernel is its stride (8 x 8: 64 ->
8 x 8 cells) and one linear layer over the cells, ~0.3M multiply-adds. ``memagent bench
pixels`` measures MemoryPPO's training throughput with it against ``NatureCNN`` in one run.
"""

from __future__ import annotations

import torch as th
from gymnasium import spaces
from stable_baselines3.common.preprocessing import is_image_space
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn
from torch.nn import functional as F

class CategoricalEmbedding(BaseFeaturesExtractor):
    """One embedding per (entry, category) of a 1-D ``MultiDiscrete`` observation, concatenated:
    ``obs (N, D)`` of category ids -> ``(N, D * embed_dim)``.

    The same function class as SB3's one-hot encoding followed by a block-diagonal linear
    layer, with the scale an embedding has: every vector starts ``N(0, 1)`` (torch's
    ``nn.Embedding``). A one-hot vector of 337 categories with 10 of them set (the T-maze's
    3 x 3 view and heading) reaches a first layer initialised for 337 inputs at about a sixth
    of the scale of its other inputs; on the length-5 T-maze (50k steps, seeds 0-4) the GRU
    core learnt the cue on 5 of 5 seeds with this extractor and on 2 of 5 with the one-hot
    (docs/policies.md, "Reliable learning").

    :param observation_space: a ``MultiDiscrete`` with a 1-D ``nvec``.
    :param embed_dim: width of each entry's vector.
    """

    reads_one_tensor = True  # one tensor, not a Dict (memagent.observations)
    reads_ids = True  # category ids, not SB3's one-hot (memagent.observations.preprocess)

    def __init__(self, observation_space: spaces.MultiDiscrete, embed_dim: int = 8) -> None:
        if not isinstance(observation_space, spaces.MultiDiscrete) or observation_space.nvec.ndim != 1:
            raise ValueError(f"CategoricalEmbedding reads a 1-D MultiDiscrete observation, got "
                             f"{observation_space}; use FlattenExtractor for other spaces")
        if int(embed_dim) < 1:
            raise ValueError(f"embed_dim must be >= 1, got {embed_dim}")
        nvec = th.as_tensor(observation_space.nvec, dtype=th.long)
        super().__init__(observation_space, int(len(nvec) * int(embed_dim)))
        self.register_buffer("offsets", th.cumsum(nvec, 0) - nvec, persistent=False)
        self.embedding = nn.Embedding(int(nvec.sum()), int(embed_dim))

    def forward(self, obs: th.Tensor) -> th.Tensor:
        ids = obs.long() + self.offsets  # (N, D): row of entry d's category in the table
        return self.embedding(ids).flatten(1)  # (N, D, E) -> (N, D*E)


#: fewer screens than this (a rollout step's) are computed faster than de-duplicated
DEDUP_MIN = 32
_MULTIPLIERS: dict[tuple[int, th.device], th.Tensor] = {}


def distinct_rows(x: th.Tensor) -> tuple[th.Tensor, th.Tensor] | None:
    """The distinct rows of ``x (N, ...)``, found exactly: ``(index (U,), inverse (N,))`` with
    ``x[index][inverse]`` bitwise equal to ``x``; ``None`` when every row is distinct or ``x``
    cannot be read as 8-byte words (not contiguous, rows not a multiple of 8 bytes).

    Rows are hashed (their 8-byte words dotted with fixed random odd multipliers, modulo
    2^64: one pass over ``x``), grouped by hash, and every row is then compared with its
    group's representative: a hash collision cannot merge two different rows (the function
    returns ``None`` instead).
    """
    n = x.shape[0]
    try:
        words = x.reshape(n, -1).view(th.int64)  # (N, row bytes / 8)
    except RuntimeError:
        return None
    key = (words.shape[1], words.device)
    mult = _MULTIPLIERS.get(key)
    if mult is None:
        gen = th.Generator().manual_seed(words.shape[1])
        mult = _MULTIPLIERS[key] = (th.randint(-2 ** 62, 2 ** 62, (words.shape[1],), generator=gen,
                                               dtype=th.int64) | 1).to(words.device)
    hashes = th.mv(words, mult) if words.device.type == "cpu" else (words * mult).sum(1)  # (N,)
    unique, inverse = th.unique(hashes, return_inverse=True)
    if len(unique) == n:
        return None
    index = th.empty(len(unique), dtype=th.long, device=x.device).scatter_(
        0, inverse, th.arange(n, device=x.device))  # one row of each hash
    distinct = words.index_select(0, index)  # (U, W)
    for rows, of in zip(words.split(64), inverse.split(64), strict=True):  # chunks stay in cache
        if not th.equal(rows, distinct.index_select(0, of)):
            return None  # two different rows share a hash
    return index, inverse


class ScreenCNN(BaseFeaturesExtractor):
    """A small CNN for gridworld screens: ``conv patch x patch / patch -> ReLU -> linear -> ReLU``.

    The convolution's kernel equals its stride, so it reads each ``patch x patch`` block once
    (64 x 64 -> 8 x 8 cells for ``patch = 8``); the linear layer then sees every cell at its
    place on the screen, which is where an egocentric view puts each tile.

    Reads images as SB3 preprocesses them, ``(N, C, H, W)`` floats in [0, 1] (SB3 moves the
    channels first and scales ``uint8``), or the raw ``uint8`` images (0-255), which it
    scales itself, folded into the convolution's weights: one pass over the pixels instead of
    two. :class:`memagent.policies.MemoryActorCriticCnnPolicy` passes the raw images
    (``reads_uint8``). Takes ``NatureCNN``'s arguments (``features_dim``, ``normalized_image``).

    :param observation_space: an image ``Box``, channels first, at least ``patch`` pixels wide.
    :param features_dim: size of the output features.
    :param channels: channels of the convolution.
    :param patch: its kernel size and stride (pixels).
    :param dedup: on a CPU, compute each distinct screen of a batch once (exact: see
        :func:`distinct_rows`). A gridworld's egocentric screens repeat: a minibatch of 512
        T-maze screens holds about ten distinct ones.
    :param normalized_image: the images are already floats in [0, 1] (as ``NatureCNN``'s).
    :raises ValueError: ``observation_space`` is not an image at least ``patch`` pixels wide, or
        a size is < 1.
    """

    reads_one_tensor = True  # one image tensor, not a Dict (memagent.observations)
    reads_uint8 = True  # raw uint8 images are scaled here (memagent.observations.preprocess)

    def __init__(self, observation_space: spaces.Box, features_dim: int = 128, channels: int = 16,
                 patch: int = 8, dedup: bool = True, normalized_image: bool = False) -> None:
        if not is_image_space(observation_space, check_channels=False,
                              normalized_image=normalized_image):
            raise ValueError(
                f"ScreenCNN reads images (a uint8 Box of shape (C, H, W) or (H, W, C)), got "
                f"{observation_space}; use \"MlpPolicy\" for other observations (or pass "
                "normalized_image=True in features_extractor_kwargs for float images in [0, 1])")
        if min(features_dim, channels, patch) < 1:
            raise ValueError(f"features_dim, channels and patch must be >= 1, got "
                             f"{features_dim}, {channels}, {patch}")
        n_in, height, width = observation_space.shape
        if min(height, width) < patch:
            raise ValueError(f"ScreenCNN with patch={patch} needs images at least {patch} pixels "
                             f"wide, got {height} x {width}; use a smaller patch")
        super().__init__(observation_space, int(features_dim))
        self.dedup = bool(dedup)
        self.conv = nn.Conv2d(n_in, channels, kernel_size=patch, stride=patch)
        n_flat = channels * (height // patch) * (width // patch)
        self.linear = nn.Linear(n_flat, int(features_dim))

    def forward(self, observations: th.Tensor) -> th.Tensor:
        """``(N, C, H, W)`` images (floats in [0, 1] or uint8) -> ``(N, features_dim)``.

        On a CPU with ``dedup`` and at least :data:`DEDUP_MIN` screens, each distinct screen
        is computed once (:func:`distinct_rows`) and its features copied to its repeats; the
        gradient sums over them, so the result is the same maths, equal to float rounding."""
        found = (distinct_rows(observations) if self.dedup and observations.shape[0] >= DEDUP_MIN
                 and observations.device.type == "cpu" else None)
        if found is None:
            return self._features(observations)
        index, inverse = found
        return self._features(observations.index_select(0, index)).index_select(0, inverse)

    def _features(self, observations: th.Tensor) -> th.Tensor:
        conv = self.conv
        if observations.dtype == th.uint8:  # x / 255 folded into the weights: W (x / 255) = (W / 255) x
            y = F.conv2d(observations.float(), conv.weight * (1 / 255), conv.bias, conv.stride)
        else:
            y = conv(observations)
        y = th.relu(y).flatten(1)  # (N, channels, H / patch, W / patch) -> (N, n_flat)
        return th.relu(self.linear(y))
