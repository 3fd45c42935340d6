"""Actor-critic policies with a memory core, for stable-baselines3.

``features extractor -> memory core -> MlpExtractor -> action / value heads``: SB3's
features extractors (``FlattenExtractor`` for ``MlpPolicy``, ``CombinedExtractor`` for the
``Dict`` observations of ``MultiInputPolicy``) or memagent's
:class:`memagent.extractors.ScreenCNN` (``CnnPolicy``), SB3's heads, and a
:class:`memagent.memory.recurrent.MemoryCore` between them (:mod:`memagent.observations`
checks the observation space).
The core is chosen by name in ``policy_kwargs=dict(memory="hopfield", memory_kwargs={...})``
(``"lstm"``, ``"gru"``, ``"nmn"``, ``"hopfield"``, a ``MemoryCore`` subclass, or ``None``
for the no-memory ablation). ``predict(obs, state, episode_start, deterministic)`` returns
``(actions, state)`` like sb3-contrib's ``RecurrentPPO``, so SB3's ``evaluate_policy`` works.

SB3's policy contract, through the memory: ``get_distribution(obs, state, episode_starts)`` and
``predict_values(obs, state, episode_starts)`` read one step through the core (``state=None``:
a fresh memory, every obs the first step of an episode). ``evaluate_actions(obs, actions)`` and
``forward(obs)`` without a state raise a ``TypeError`` naming :meth:`evaluate_sequence` and
MemoryPPO: a flat batch has no memory state, so SB3's ``PPO`` would train the policy as if it
had none.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.distributions import CategoricalDistribution, Distribution
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.torch_layers import (
    CombinedExtractor,
    FlattenExtractor,
    MlpExtractor,
)

from memagent.extractors import CategoricalEmbedding, ScreenCNN
from memagent.memory.core import MemoryCore, State, make_core
from memagent.observations import (
    Obs,
    check_observation_space,
    map_obs,
    obs_batch_size,
    one_hot_encoders,
    preprocess,
)

_NO_STATE: Any = object()  # forward() called without a memory state (SB3's policy(obs))
_SB3_ALGORITHM_ERROR = (
    "MemoryActorCriticPolicy.{call} has no memory state or episode starts, so an SB3 algorithm "
    "would run the policy as if it had no memory; train it with "
    "memagent.agents.memory_ppo.MemoryPPO (or call evaluate_sequence(obs, actions, state, "
    "episode_starts) / forward(obs, state, episode_starts))")


class CategoricalFlattenExtractor(FlattenExtractor):
    """SB3's ``FlattenExtractor`` whose ``features_dim`` is a Python ``int``.

    For a ``MultiDiscrete`` observation SB3 computes the one-hot width as a numpy integer
    (``sum(nvec)``), which ``torch.nn.LSTM`` rejects (``input_size should be of type int``):
    pass ``policy_kwargs=dict(features_extractor_class=CategoricalFlattenExtractor)`` to
    sb3-contrib's ``RecurrentPPO`` on memagent's symbolic gridworlds.
    """

    def __init__(self, observation_space: spaces.Space) -> None:
        super().__init__(observation_space)
        self._features_dim = int(self._features_dim)


class MemoryActorCriticPolicy(ActorCriticPolicy):
    """An SB3 ``ActorCriticPolicy`` whose features pass through a memory core.

    Takes every argument of :class:`stable_baselines3.common.policies.ActorCriticPolicy`, and:

    :param memory: the core: ``"lstm"``, ``"gru"``, ``"nmn"``, ``"hopfield"``, a
        :class:`MemoryCore` subclass (built as ``cls(features_dim, **memory_kwargs)``) or
        ``None`` (no memory: the features go straight to the MLP).
    :param memory_kwargs: the core's own parameters, e.g. ``{"capacity": 2048}``.
    :param critic_trains_memory: ``True`` (default): the value loss trains the core and the
        features extractor beside the policy loss; ``False``: the critic reads the core's
        output with its gradient stopped, so only the actor's loss (and the entropy bonus)
        shapes what the memory holds (sb3-contrib's ``shared_lstm=True``).

    A ``MultiDiscrete`` observation (memagent's symbolic gridworlds) is read by
    :class:`memagent.extractors.CategoricalEmbedding` unless ``features_extractor_class`` says
    otherwise (``FlattenExtractor``: SB3's one-hot encoding).

    :raises ValueError: an observation space the features extractor cannot read (a ``Tuple``,
        a ``Dict`` without ``MultiInputPolicy``, ...), an unknown core or a ``memory_kwargs``
        key the core does not have; each message names the fix.
    """

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space, lr_schedule,
                 *args, memory: str | type[MemoryCore] | None = "gru",
                 memory_kwargs: dict[str, Any] | None = None, critic_trains_memory: bool = True,
                 **kwargs):
        if not isinstance(critic_trains_memory, bool):
            raise ValueError(f"critic_trains_memory must be True or False, got {critic_trains_memory!r}")
        self.critic_trains_memory = critic_trains_memory
        if (kwargs.get("features_extractor_class") is None
                and isinstance(observation_space, spaces.MultiDiscrete)):
            kwargs["features_extractor_class"] = CategoricalEmbedding  # categories, not one-hot
        check_observation_space(observation_space,
                                kwargs.get("features_extractor_class") or FlattenExtractor)
        if kwargs.get("share_features_extractor", True) is False:
            raise ValueError("MemoryActorCriticPolicy shares one features extractor and one memory "
                             "between actor and critic; drop share_features_extractor=False")
        self.memory_name = memory
        self.memory_kwargs = dict(memory_kwargs or {})
        if kwargs.get("optimizer_kwargs") is None and kwargs.get("optimizer_class", th.optim.Adam) is th.optim.Adam:
            # SB3's Adam eps, with torch's fused kernel: one call for all parameters, 4x faster
            # a step than the default for-each Adam on this small net (same update rule).
            kwargs["optimizer_kwargs"] = {"eps": 1e-5, "fused": True}
        super().__init__(observation_space, action_space, lr_schedule, *args, **kwargs)
        self._one_hot = one_hot_encoders(observation_space)
        for i, encoder in enumerate(self._one_hot.values()):
            self.add_module(f"_one_hot_{i}", encoder)  # moves with the policy's device

    def extract_features(self, obs: Obs, features_extractor=None) -> th.Tensor:
        """SB3's ``extract_features`` (preprocess, then the features extractor), with the
        one-hot encoding of every ``MultiDiscrete`` observation (or Dict entry) done in one
        scatter, and raw ``uint8`` images for an extractor that scales them itself
        (``reads_uint8``). ``obs``: ``(N, ...)``, or a dict of them."""
        extractor = features_extractor or self.features_extractor
        features = preprocess(obs, self.observation_space, getattr(self, "_one_hot", {}),
                              self.normalize_images, getattr(extractor, "reads_uint8", False),
                              getattr(extractor, "reads_ids", False))
        return extractor(features)

    def _build_mlp_extractor(self) -> None:
        self.memory = self._build_memory()
        dim = self.features_dim if self.memory is None else self.memory.output_dim
        self.mlp_extractor = MlpExtractor(dim, net_arch=self.net_arch,
                                          activation_fn=self.activation_fn, device=self.device)

    def _build_memory(self) -> MemoryCore | None:
        name = self.memory_name
        if name is None:
            return None
        if not (isinstance(name, str) or (isinstance(name, type) and issubclass(name, MemoryCore))):
            raise ValueError(f"memory must be a core name, a MemoryCore subclass or None, got {name!r}")
        core = make_core(name, self.features_dim, **self.memory_kwargs)
        if getattr(core, "input_dim", None) != self.features_dim:
            raise ValueError(f"memory core {type(core).__name__} reads input_dim="
                             f"{getattr(core, 'input_dim', None)} but the features extractor gives "
                             f"{self.features_dim}; build the core with input_dim={self.features_dim}")
        try:  # a dry run: does the core give what it says?
            with th.no_grad():
                y, _ = core(th.zeros(1, 1, self.features_dim), core.initial_state(1), th.ones(1, 1))
        except (RuntimeError, ValueError) as err:
            raise ValueError(f"memory core {type(core).__name__} (input_dim={self.features_dim}, "
                             f"output_dim={core.output_dim}) failed on a (1, 1, {self.features_dim}) "
                             f"input: {err}; check its memory_kwargs and output_dim") from err
        if y.shape != (1, 1, core.output_dim):
            raise ValueError(f"memory core {type(core).__name__} declares output_dim={core.output_dim} "
                             f"but returned outputs of shape {tuple(y.shape)} for x of shape "
                             f"(1, 1, {self.features_dim}); make output_dim the last dimension of y")
        return core

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(memory=self.memory_name, memory_kwargs=self.memory_kwargs,
                    critic_trains_memory=self.critic_trains_memory)
        return data

    # -- memory state ------------------------------------------------------------------
    def initial_state(self, n_envs: int) -> State:
        """The memory state before any episode, for ``n_envs`` envs (``()`` without memory)."""
        return () if self.memory is None else self.memory.initial_state(n_envs, self.device)

    def select_state(self, state: State, index: th.Tensor) -> State:
        """The state of the envs ``index`` (a 1-D long tensor)."""
        return () if self.memory is None else self.memory.select_state(state, index)

    # -- sequences ---------------------------------------------------------------------
    def _latent(self, obs: Obs, state: State, episode_starts: th.Tensor):
        """``obs (T, B, *obs_shape)`` (or a dict of them) -> actor and critic latents
        ``(T*B, .)`` and the state."""
        T, B = episode_starts.shape
        flat = map_obs(lambda o: o.reshape(T * B, *o.shape[2:]), obs)  # (T, B, ...) -> (T*B, ...)
        features = self.extract_features(flat)  # (T*B, F)
        if self.memory is not None:
            y, state = self.memory(features.view(T, B, -1), state, episode_starts)  # (T, B, H)
            features = y.reshape(T * B, -1)  # (T, B, H) -> (T*B, H)
        if self.critic_trains_memory:
            latent_pi, latent_vf = self.mlp_extractor(features)
        else:
            latent_pi = self.mlp_extractor.forward_actor(features)
            latent_vf = self.mlp_extractor.forward_critic(features.detach())
        return latent_pi, latent_vf, state

    def _step_latent(self, obs: Obs, state: State | None, episode_starts: th.Tensor | None):
        """Latents of one step ``obs (B, ...)``. ``state=None`` is a fresh memory (every obs the
        first step of an episode); ``episode_starts=None`` is 1 with a fresh memory, else 0."""
        n = obs_batch_size(obs)
        if episode_starts is None:
            episode_starts = th.full((n,), float(state is None), device=self.device)
        state = self.initial_state(n) if state is None else state
        return self._latent(map_obs(lambda o: o.unsqueeze(0), obs), state,  # (B, ...) -> (1, B, ...)
                            episode_starts.view(1, -1).float())

    def forward(self, obs: th.Tensor, state: State = _NO_STATE, episode_starts: th.Tensor | None = None,
                deterministic: bool = False):
        """One step for ``B`` envs: ``obs (B, ...)``, ``episode_starts (B,)`` ->
        ``actions, values (B, 1), log_prob (B,), state``.

        :raises TypeError: called SB3's way, ``policy(obs)``, without the memory state.
        """
        if state is _NO_STATE:
            raise TypeError(_SB3_ALGORITHM_ERROR.format(call="forward(obs)"))
        latent_pi, latent_vf, state = self._step_latent(obs, state, episode_starts)
        if isinstance(self.action_dist, CategoricalDistribution):  # fast path: no Distribution object
            log_p = th.log_softmax(self.action_net(latent_pi), -1)  # (B, n_actions)
            if deterministic:
                actions = log_p.argmax(-1)  # (B,)
            else:  # inverse-CDF sampling: one uniform per env (torch.multinomial is slower here)
                u = th.rand(log_p.shape[0], 1, device=log_p.device)
                actions = (log_p.exp().cumsum(-1) < u).sum(-1).clamp(max=log_p.shape[-1] - 1)
            return actions, self.value_net(latent_vf), log_p.gather(-1, actions[:, None])[:, 0], state
        distribution = self._get_action_dist_from_latent(latent_pi)
        actions = distribution.get_actions(deterministic=deterministic)
        actions = actions.reshape((-1, *self.action_space.shape))
        return actions, self.value_net(latent_vf), distribution.log_prob(actions), state

    def evaluate_sequence(self, obs: th.Tensor, actions: th.Tensor, state: State,
                          episode_starts: th.Tensor):
        """Recompute a whole sequence from its initial ``state`` in one forward.

        :param obs: ``(T, B, *obs_shape)``. :param actions: ``(T*B, ...)`` (time-major).
        :param episode_starts: ``(T, B)``.
        :return: values ``(T*B, 1)``, log-probabilities ``(T*B,)``, entropy ``(T*B,)``.
        """
        latent_pi, latent_vf, _ = self._latent(obs, state, episode_starts)
        distribution = self._get_action_dist_from_latent(latent_pi)
        return self.value_net(latent_vf), distribution.log_prob(actions), distribution.entropy()

    def evaluate_actions(self, obs: th.Tensor, actions: th.Tensor):
        """Not available: one flat batch carries no memory state or episode starts.

        SB3's ``PPO.train`` calls it with shuffled steps; a memory policy trained that way
        would learn as if it had no memory. Use :meth:`evaluate_sequence` (whole sequences
        from their memory state), as :class:`memagent.agents.memory_ppo.MemoryPPO` does.

        :raises TypeError: always.
        """
        raise TypeError(_SB3_ALGORITHM_ERROR.format(call="evaluate_actions(obs, actions)"))

    def get_distribution(self, obs: th.Tensor, state: State | None = None,
                         episode_starts: th.Tensor | None = None) -> Distribution:
        """The action distribution of one step ``obs (B, ...)`` read through the memory.

        :param state: the memory state before this step (from :meth:`initial_state`,
            :meth:`forward` or :meth:`predict`); ``None``: a fresh memory, so every ``obs`` is
            read as the first step of an episode.
        :param episode_starts: ``(B,)``, 1 where ``obs`` starts an episode; ``None``: 1 with a
            fresh memory, 0 (the episode continues) with a given ``state``.
        """
        latent_pi, _, _ = self._step_latent(obs, state, episode_starts)
        return self._get_action_dist_from_latent(latent_pi)

    def predict_values(self, obs: th.Tensor, state: State | None = None,
                       episode_starts: th.Tensor | None = None) -> th.Tensor:
        """Values ``(B, 1)`` of one step ``obs (B, ...)`` read through the memory; ``state``
        and ``episode_starts`` as in :meth:`get_distribution`."""
        _, latent_vf, _ = self._step_latent(obs, state, episode_starts)
        return self.value_net(latent_vf)

    def _predict(self, observation: th.Tensor, state: State, episode_starts: th.Tensor,
                 deterministic: bool = False):
        actions, _, _, state = self.forward(observation, state, episode_starts, deterministic)
        return actions, state

    def predict(self, observation: np.ndarray, state: tuple | None = None,
                episode_start: np.ndarray | None = None, deterministic: bool = False):
        """Actions for one step of ``n`` envs, and the memory state to pass back next step.

        :param observation: one observation or a batch ``(n, ...)``.
        :param state: what the previous call returned; ``None`` starts fresh.
        :param episode_start: ``(n,)``, 1 where an episode starts (SB3's ``dones``).
        :return: ``(actions, state)``; ``state`` is a tuple of numpy arrays.
        """
        self.set_training_mode(False)
        obs, vectorized = self.obs_to_tensor(observation)
        n = obs_batch_size(obs)
        if state is None:
            state = self.initial_state(n)
            episode_start = np.ones(n)
        state = tuple(th.as_tensor(np.asarray(s), device=self.device) for s in state)
        starts = np.zeros(n) if episode_start is None else np.asarray(episode_start)
        with th.no_grad():
            actions, state = self._predict(obs, state, th.as_tensor(starts, device=self.device,
                                                                    dtype=th.float32), deterministic)
        actions = actions.cpu().numpy().reshape((-1, *self.action_space.shape))
        if isinstance(self.action_space, spaces.Box):
            actions = (self.unscale_action(actions) if self.squash_output
                       else np.clip(actions, self.action_space.low, self.action_space.high))
        if not vectorized:
            actions = actions.squeeze(axis=0)
        return actions, tuple(s.cpu().numpy() for s in state)


class MemoryActorCriticCnnPolicy(MemoryActorCriticPolicy):
    """:class:`MemoryActorCriticPolicy` for image observations, with memagent's
    :class:`memagent.extractors.ScreenCNN` (sized for 64 x 64 gridworld screens); pass
    ``features_extractor_class=NatureCNN`` for SB3's Atari CNN."""

    def __init__(self, observation_space, action_space, lr_schedule, *args,
                 features_extractor_class: type = ScreenCNN, **kwargs):
        super().__init__(observation_space, action_space, lr_schedule, *args,
                         features_extractor_class=features_extractor_class, **kwargs)


class MemoryMultiInputActorCriticPolicy(MemoryActorCriticPolicy):
    """:class:`MemoryActorCriticPolicy` for ``Dict`` observations: SB3's ``CombinedExtractor``
    (each entry preprocessed and flattened, or a ``NatureCNN`` for image entries, then
    concatenated) in front of the memory, as SB3's ``MultiInputPolicy``."""

    def __init__(self, observation_space, action_space, lr_schedule, *args,
                 features_extractor_class: type = CombinedExtractor, **kwargs):
        super().__init__(observation_space, action_space, lr_schedule, *args,
                         features_extractor_class=features_extractor_class, **kwargs)


MlpPolicy = MemoryActorCriticPolicy
CnnPolicy = MemoryActorCriticCnnPolicy
MultiInputPolicy = MemoryMultiInputActorCriticPolicy
