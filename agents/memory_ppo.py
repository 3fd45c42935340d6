"""MemoryPPO: PPO (Schulman et al. 2017, clipped objective eq. 7) with a memory core.

Used like SB3's ``PPO``::

    from memagent.agents.memory_ppo import MemoryPPO
    model = MemoryPPO("MlpPolicy", env, policy_kwargs=dict(memory="hopfield"), seed=0)
    model.learn(50_000)

Rollouts step the memory one step at a time for every env and store the memory state once
per rollout per env (at the rollout's start). Training is truncated back-propagation over
the whole rollout: each minibatch is a subset of envs with their full ``n_steps`` sequence,
recomputed from the stored state in one forward of the core (no Python loop over time).
"""

from __future__ import annotations

from typing import Any, ClassVar, TypeVar

import numpy as np
import torch as th
from gymnasium import spaces
from memagent.agents.memory_buffer import MemoryRolloutBuffer
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback, Schedule
from stable_baselines3.common.utils import (
    FloatSchedule,
    LinearSchedule,
    explained_variance,
    obs_as_tensor,
)
from stable_baselines3.common.vec_env import VecEnv
from torch.nn import functional as F

from memagent.policies import (
    MemoryActorCriticCnnPolicy,
    MemoryActorCriticPolicy,
    MemoryMultiInputActorCriticPolicy,
)
from memagent.utils import AUTO_CUDA_MIN_ENVS

SelfMemoryPPO = TypeVar("SelfMemoryPPO", bound="MemoryPPO")

#: 6e-4 at the start of ``learn``, 0 at its end.
DEFAULT_LEARNING_RATE = LinearSchedule(6e-4, 0.0, 1.0)
#: 0.003 at the start of ``learn``, 0 at its end (``"lin_0.003"`` on the command line).
DEFAULT_ENT_COEF = LinearSchedule(0.003, 0.0, 1.0)
#: weight of the KL penalty that holds a solved policy (``kl_coef``).
DEFAULT_KL_COEF = 0.1


def ppo_policy_loss(advantages: th.Tensor, log_ratio: th.Tensor, clip_range: float,
                    dual_clip: float | None = None) -> th.Tensor:
    """PPO's clipped surrogate loss, ``-mean(min(r A, clip(r, 1 - eps, 1 + eps) A))`` with
    ``r = exp(log_ratio)``; with ``dual_clip = c`` each sample of ``A < 0`` is bounded below by
    ``c A`` (dual-clip PPO), so a ratio beyond ``c`` no longer pushes the update."""
    ratio = th.exp(log_ratio)
    surrogate = th.min(advantages * ratio, advantages * th.clamp(ratio, 1 - clip_range, 1 + clip_range))
    if dual_clip is not None:
        surrogate = th.where(advantages < 0, th.max(surrogate, dual_clip * advantages), surrogate)
    return -surrogate.mean()


def kl_penalty(log_ratio: th.Tensor) -> th.Tensor:
    """``mean((r - 1) - log r)``: the k3 estimate of KL(old || new) from the sampled actions'
    log-ratios, >= 0 and 0 only at ``r = 1``; its gradient pulls every sample's ratio to 1."""
    return th.mean(th.expm1(log_ratio) - log_ratio)


class MemoryPPO(OnPolicyAlgorithm):
    """Proximal Policy Optimization with a memory core, trained on whole rollout sequences.

    :param policy: ``"MlpPolicy"`` (``Box``, ``Discrete``, ``MultiDiscrete``, ``MultiBinary``
        observations), ``"CnnPolicy"`` (images), ``"MultiInputPolicy"`` (a ``Dict`` of those)
        or a :class:`MemoryActorCriticPolicy` class.
    :param env: the environment (a gymnasium env, a VecEnv or a registered id).
    :param learning_rate: learning rate, or a schedule of the remaining progress. Default:
        6e-4 decaying linearly to 0 over each ``learn`` call (SB3's ``LinearSchedule``, the
        annealing CleanRL's PPO does by default). With a constant rate solved runs kept
        falling back to chance for a few rollouts late in training, so where a run stopped
        decided its result; the decay makes the last updates small (docs/policies.md).
    :param n_steps: steps per env per rollout; also the truncated-BPTT length.
    :param batch_size: samples per minibatch; a multiple of ``n_steps``, since a minibatch is
        ``batch_size // n_steps`` envs with their whole sequence. ``None`` (the default):
        ``n_steps``, one env's sequence per minibatch, so ``n_envs`` minibatches per epoch (as
        sb3-contrib's RecurrentPPO, whose default minibatch is one 128-step sequence). Four
        sequences per minibatch (512, the default until the twelfth session) gave a quarter
        of the gradient steps per sample; with one (and the centring below) the GRU solves
        RecallSequence on 9 of 10 seeds (1 of 10 before) and TMaze-L100 on 10 of 10 (9 of 10),
        at ~20-35% fewer training steps/s (docs/policies.md, "One sequence per minibatch").
    :param n_epochs: passes over each rollout.
    :param gamma: discount factor.
    :param gae_lambda: GAE ``lambda``.
    :param clip_range: PPO clipping ``epsilon`` (or a schedule).
    :param clip_range_vf: clipping of the value update, ``None`` for none.
    :param normalize_advantage: ``"center"`` (the default): subtract each minibatch's mean
        advantage; ``True``: subtract it and divide by the minibatch's standard deviation
        (SB3's default); ``False``: neither. The centring is what moves the recurrent cores off
        a junction's first door (an uncentred advantage, biased positive while the critic
        lags, reinforces whatever is sampled most); the scaling is what made solved memory
        policies fall back to chance (once solved, the advantages are the critic's noise,
        scaled up to unit variance), so it is off (docs/policies.md). For rewards far from
        unit scale normalise the rewards instead (``VecNormalize``).
    :param ent_coef: entropy coefficient, or a schedule of the progress remaining. Default:
        0.003 decaying linearly to 0 over each ``learn`` call (``"lin_0.003"`` through the
        CLI), a bonus below every memagent maze's step cost. Over 10 seeds it solves as many
        or more cells than no bonus (KeyDoor hopfield 6 vs 5 of 10, RecallSequence hopfield 10
        vs 7, TMaze-L100 gru 9 vs 8 of 9, lstm 9 of 10); ``"lin_0.01"`` solves KeyDoor
        hopfield 9 of 10 but loses the 100-step corridor for the GRU (4 of 10) and LSTM
        (7 of 10) (docs/policies.md, "The decaying entropy bonus over the grid").
    :param dual_clip: dual-clip PPO (Ye et al. 2020, as tianshou's ``dual_clip``): for a
        negative advantage the per-sample objective is bounded below by ``dual_clip * A``, so
        an action whose probability has grown far past its old one (ratio ``> dual_clip``)
        stops pushing the update. ``None`` (default): SB3's clipped objective; must be > 1.
    :param kl_coef: weight of a KL penalty beside the clipped objective, on every sample:
        ``kl_coef * mean((r - 1) - log r)`` (the k3 estimate of KL(old || new), >= 0, zero at
        ``r = 1``). The clip leaves samples with a near-zero advantage (every step of a solved
        policy) free to drift as shared weights move; the penalty pulls each back. 0.1
        (default; 0 turns it off): over the grid it solves as many seeds as 0, and no run that
        reached 95% greedy success fell back outside the L1000 curriculum preset, against
        three at 0 (docs/policies.md, "`kl_coef=0.1`, the default").
    :param vf_coef: value-loss coefficient.
    :param max_grad_norm: gradient-norm clip.
    :param target_kl: stop an update early when the approximate KL passes ``1.5 * target_kl``.
    :param bootstrap_truncated: at a time-limit truncation add ``gamma * V(terminal obs)`` to
        the reward (SB3's behaviour, right when the limit only interrupts the task). Pass
        False where running out of time is failing the task (memagent's mazes): bootstrapping
        then pays an agent for waiting out the clock.
    :param stats_window_size: episodes the rollout logs average over.
    :param tensorboard_log: TensorBoard folder, ``None`` for none.
    :param policy_kwargs: policy arguments, e.g. ``dict(memory="gru", memory_kwargs={...})``.
    :param verbose: 0 silent, 1 training logs.
    :param seed: seeds python, numpy, torch, the env and the action space.
    :param device: ``"auto"``, ``"cpu"`` or ``"cuda[:i]"``.
    :param _init_setup_model: build the networks now (SB3 ``load`` passes False).
    """

    policy_aliases: ClassVar[dict[str, type]] = {
        "MlpPolicy": MemoryActorCriticPolicy,
        "CnnPolicy": MemoryActorCriticCnnPolicy,
        "MultiInputPolicy": MemoryMultiInputActorCriticPolicy,
    }
    policy: MemoryActorCriticPolicy

    def __init__(self, policy: str | type[MemoryActorCriticPolicy], env: GymEnv | str,
                 learning_rate: float | Schedule = DEFAULT_LEARNING_RATE, n_steps: int = 128,
                 batch_size: int | None = None,
                 n_epochs: int = 10, gamma: float = 0.99, gae_lambda: float = 0.95,
                 clip_range: float | Schedule = 0.2, clip_range_vf: float | Schedule | None = None,
                 normalize_advantage: bool | str = "center", ent_coef: float | Schedule = DEFAULT_ENT_COEF,
                 dual_clip: float | None = None, kl_coef: float = DEFAULT_KL_COEF, vf_coef: float = 0.5, max_grad_norm: float = 0.5, target_kl: float | None = None,
                 bootstrap_truncated: bool = True, stats_window_size: int = 100,
                 tensorboard_log: str | None = None,
                 policy_kwargs: dict[str, Any] | None = None, verbose: int = 0,
                 seed: int | None = None, device: th.device | str = "auto",
                 _init_setup_model: bool = True):
        if not callable(ent_coef) and (isinstance(ent_coef, bool) or not isinstance(ent_coef, (int, float))):
            raise ValueError(f"ent_coef must be a number or a schedule (a callable of the progress "
                             f"remaining; 'lin_0.01' on the command line), got {ent_coef!r}")
        super().__init__(
            policy, env, learning_rate=learning_rate, n_steps=n_steps, gamma=gamma,
            gae_lambda=gae_lambda, ent_coef=ent_coef, vf_coef=vf_coef, max_grad_norm=max_grad_norm,
            use_sde=False, sde_sample_freq=-1, stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log, policy_kwargs=policy_kwargs, verbose=verbose,
            seed=seed, device=device, _init_setup_model=False,
            supported_action_spaces=(spaces.Box, spaces.Discrete, spaces.MultiDiscrete,
                                     spaces.MultiBinary),
        )
        if n_steps < 1:
            raise ValueError(f"n_steps must be >= 1, got {n_steps}")
        if batch_size is None:
            batch_size = n_steps
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
                or batch_size < n_steps or batch_size % n_steps:
            raise ValueError(f"batch_size must be a multiple of n_steps={n_steps} (a minibatch is "
                             f"whole env sequences), got {batch_size!r}; try batch_size={n_steps} "
                             f"(one sequence per minibatch, the default)")
        if normalize_advantage not in (True, False, "center"):
            raise ValueError(f"normalize_advantage must be 'center' (subtract each minibatch's "
                             f"mean, the default), True (also divide by its std, SB3's) or False, "
                             f"got {normalize_advantage!r}")
        if dual_clip is not None and (isinstance(dual_clip, bool) or not isinstance(dual_clip, (int, float))
                                      or not dual_clip > 1):
            raise ValueError(f"dual_clip must be a number > 1 (3 in the dual-clip paper) or None "
                             f"(off, the default), got {dual_clip!r}")
        if isinstance(kl_coef, bool) or not isinstance(kl_coef, (int, float)) or not kl_coef >= 0:
            raise ValueError(f"kl_coef must be a number >= 0 (0 turns the KL penalty off; the default is 0.1), got {kl_coef!r}")
        self.kl_coef = float(kl_coef)
        self.dual_clip = None if dual_clip is None else float(dual_clip)
        self.batch_size, self.n_epochs = batch_size, n_epochs
        self.clip_range, self.clip_range_vf = clip_range, clip_range_vf
        self.normalize_advantage, self.target_kl = normalize_advantage, target_kl
        self.bootstrap_truncated = bootstrap_truncated
        self._last_memory_state = None
        if _init_setup_model:
            self._setup_model()

    def _setup_model(self) -> None:
        self._setup_lr_schedule()
        self.set_random_seed(self.seed)
        self.policy = self.policy_class(self.observation_space, self.action_space,
                                        self.lr_schedule, **self.policy_kwargs).to(self.device)
        if self.n_envs < AUTO_CUDA_MIN_ENVS:
            # SB3's advice (MLP policies train faster on the CPU) holds for small batches; from
            # AUTO_CUDA_MIN_ENVS envs a GPU wins (README, `bench gpu`), so it is not repeated there
            self._maybe_recommend_cpu("MemoryActorCriticPolicy")
        self.rollout_buffer = MemoryRolloutBuffer(self.n_steps, self.n_envs, self.device,
                                                  gamma=self.gamma, gae_lambda=self.gae_lambda)
        self.clip_range = FloatSchedule(self.clip_range)
        self.ent_coef = FloatSchedule(self.ent_coef)
        if self.clip_range_vf is not None:
            self.clip_range_vf = FloatSchedule(self.clip_range_vf)

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "_last_memory_state"]

    def _setup_learn(self, total_timesteps, callback=None, reset_num_timesteps=True,
                     tb_log_name="run", progress_bar=False):
        if reset_num_timesteps or self._last_obs is None:
            self._last_memory_state = None  # the env is reset: start every env's memory fresh
        return super()._setup_learn(total_timesteps, callback, reset_num_timesteps,
                                    tb_log_name, progress_bar)

    @staticmethod
    def _wrap_env(env, verbose: int = 0, monitor_wrapper: bool = True):
        """SB3's wrapping, and channel-first images of a device VecEnv transposed as tensors."""
        from memagent.envs.vec import TensorVecTransposeImage, wants_tensor_transpose

        if wants_tensor_transpose(env):
            env = TensorVecTransposeImage(env)
        return OnPolicyAlgorithm._wrap_env(env, verbose, monitor_wrapper)

    def collect_rollouts(self, env: VecEnv, callback: BaseCallback,
                         rollout_buffer: RolloutBuffer | MemoryRolloutBuffer,
                         n_rollout_steps: int) -> bool:
        """Step every env ``n_rollout_steps`` times, the memory one step at a time (T=1).

        A VecEnv of numpy arrays and one of device tensors (``make_vec(..., device=...)``)
        take the same path: observations, rewards and dones become tensors on the
        algorithm's device (a no-op for a device VecEnv on that device), actions go to a
        tensor VecEnv as tensors, and only the finished envs' indices and infos are read on
        the host."""
        assert self._last_obs is not None, "No previous observation was provided"
        self.policy.set_training_mode(False)
        dev = self.device
        if self._last_memory_state is None:
            self._last_memory_state = self.policy.initial_state(env.num_envs)
        state = self._last_memory_state
        rollout_buffer.reset(state)
        callback.on_rollout_start()
        starts = th.as_tensor(self._last_episode_starts, dtype=th.float32, device=dev)
        n_steps = 0
        while n_steps < n_rollout_steps:
            obs_tensor = _obs_tensor(self._last_obs, dev)
            with th.no_grad():
                actions, values, log_probs, state = self.policy(obs_tensor, state, starts)
            new_obs, rewards, dones, infos = env.step(self._env_actions(actions, self._last_obs))
            self.num_timesteps += env.num_envs
            callback.update_locals(locals())
            if not callback.on_step():
                return False
            done_idx = (dones.nonzero().flatten() if isinstance(dones, th.Tensor)
                        else np.flatnonzero(dones)).tolist()
            done_infos = [infos[i] for i in done_idx]
            self._update_info_buffer(done_infos, np.ones(len(done_idx), dtype=bool))
            n_steps += 1
            rewards = th.as_tensor(rewards, dtype=th.float32, device=dev)
            if self.bootstrap_truncated and done_idx:
                self._bootstrap_truncated(rewards, state, done_idx, done_infos)
            rollout_buffer.add(obs_tensor, actions, rewards, starts, values, log_probs)
            self._last_obs = new_obs
            self._last_episode_starts = dones
            starts = th.as_tensor(dones, dtype=th.float32, device=dev)
        self._last_memory_state = state
        with th.no_grad():
            values = self.policy.predict_values(_obs_tensor(new_obs, dev), state, starts)
        rollout_buffer.compute_returns_and_advantage(last_values=values, dones=starts)
        callback.update_locals(locals())
        callback.on_rollout_end()
        return True

    def _env_actions(self, actions: th.Tensor, obs):
        """The policy's actions as the VecEnv takes them: tensors for a VecEnv of tensors,
        numpy arrays otherwise; ``Box`` actions clipped to the space (or unscaled)."""
        box = isinstance(self.action_space, spaces.Box)
        if _is_tensor_obs(obs):
            if box:
                low = th.as_tensor(self.action_space.low, device=actions.device)
                high = th.as_tensor(self.action_space.high, device=actions.device)
                actions = (low + 0.5 * (actions + 1.0) * (high - low) if self.policy.squash_output
                           else th.clamp(actions, low, high))
            return actions
        clipped = actions.cpu().numpy()
        if box:
            clipped = (self.policy.unscale_action(clipped) if self.policy.squash_output
                       else np.clip(clipped, self.action_space.low, self.action_space.high))
        return clipped

    def _bootstrap_truncated(self, rewards: th.Tensor, state, done_idx: list[int],
                             done_infos: list[dict]) -> None:
        """At a time-limit truncation add ``gamma * V(terminal obs)`` to the reward, the
        terminal observation read by the memory as the episode's next step (SB3 issue
        #633); one batched forward for all the envs truncated at this step."""
        trunc = [(i, info["terminal_observation"]) for i, info in zip(done_idx, done_infos, strict=True)
                 if info.get("terminal_observation") is not None
                 and info.get("TimeLimit.truncated", False)]
        if not trunc:
            return
        index = th.as_tensor([i for i, _ in trunc], device=self.device)
        terminal = _stack_obs([obs for _, obs in trunc], self.device)
        with th.no_grad():
            sub = self.policy.select_state(state, index)
            value = self.policy.predict_values(terminal, sub, th.zeros(len(trunc), device=self.device))
        rewards[index] += self.gamma * value.flatten()

    def train(self) -> None:
        """PPO epochs over minibatches of envs, each recomputed over its whole sequence."""
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)
        clip_range = self.clip_range(self._current_progress_remaining)
        ent_coef = self.ent_coef(self._current_progress_remaining)
        clip_range_vf = (self.clip_range_vf(self._current_progress_remaining)
                         if self.clip_range_vf is not None else None)
        envs_per_batch = max(1, min(self.n_envs, self.batch_size // self.n_steps))
        logs: dict[str, list[th.Tensor]] = {k: [] for k in ("pg", "value", "entropy", "clip", "kl", "ratio_max")}
        continue_training = True
        for epoch in range(self.n_epochs):
            approx_kl_divs = []
            for batch in self.rollout_buffer.get(envs_per_batch, self.policy.select_state):
                actions = batch.actions
                if isinstance(self.action_space, spaces.Discrete):
                    actions = actions.long().flatten()
                values, log_prob, entropy = self.policy.evaluate_sequence(
                    batch.observations, actions, batch.memory_state, batch.episode_starts)
                values = values.flatten()
                advantages = batch.advantages
                if self.normalize_advantage == "center":
                    advantages = advantages - advantages.mean()
                elif self.normalize_advantage and len(advantages) > 1:
                    advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
                ratio = th.exp(log_prob - batch.old_log_prob)
                policy_loss = ppo_policy_loss(advantages, log_prob - batch.old_log_prob, clip_range,
                                              self.dual_clip)
                values_pred = values if clip_range_vf is None else batch.old_values + th.clamp(
                    values - batch.old_values, -clip_range_vf, clip_range_vf)
                value_loss = F.mse_loss(batch.returns, values_pred)
                entropy_loss = -th.mean(-log_prob) if entropy is None else -th.mean(entropy)
                loss = policy_loss + ent_coef * entropy_loss + self.vf_coef * value_loss
                if self.kl_coef:
                    loss = loss + self.kl_coef * kl_penalty(log_prob - batch.old_log_prob)
                with th.no_grad():
                    log_ratio = log_prob - batch.old_log_prob
                    approx_kl = th.mean((th.exp(log_ratio) - 1) - log_ratio)
                    for key, v in (("pg", policy_loss), ("value", value_loss), ("entropy", entropy_loss),
                                   ("clip", th.mean((th.abs(ratio - 1) > clip_range).float())),
                                   ("kl", approx_kl), ("ratio_max", ratio.max())):
                        logs[key].append(v.detach())
                approx_kl_divs.append(approx_kl)
                if self.target_kl is not None and float(approx_kl) > 1.5 * self.target_kl:
                    continue_training = False
                    if self.verbose >= 1:
                        print(f"Early stopping at step {epoch} due to reaching max kl: {float(approx_kl):.2f}")
                    break
                self.policy.optimizer.zero_grad()
                loss.backward()
                th.nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)
                self.policy.optimizer.step()
            self._n_updates += 1
            if not continue_training:
                break
        buf = self.rollout_buffer
        mean = {k: float(th.stack(v).mean()) if v else float("nan") for k, v in logs.items()}
        self.logger.record("train/entropy_loss", mean["entropy"])
        self.logger.record("train/policy_gradient_loss", mean["pg"])
        self.logger.record("train/value_loss", mean["value"])
        self.logger.record("train/approx_kl", mean["kl"])
        self.logger.record("train/clip_fraction", mean["clip"])
        self.logger.record("train/ratio_max", max((float(v) for v in logs["ratio_max"]), default=float("nan")))
        self.logger.record("train/loss", float(loss.detach()))
        self.logger.record("train/explained_variance",
                           explained_variance(buf.values_t.flatten().cpu().numpy(),
                                              buf.returns.flatten().cpu().numpy()))
        if hasattr(self.policy, "log_std"):
            self.logger.record("train/std", th.exp(self.policy.log_std).mean().item())
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/clip_range", clip_range)
        self.logger.record("train/ent_coef", ent_coef)
        if clip_range_vf is not None:
            self.logger.record("train/clip_range_vf", clip_range_vf)

    def learn(self: SelfMemoryPPO, total_timesteps: int, callback: MaybeCallback = None,
              log_interval: int = 1, tb_log_name: str = "MemoryPPO",
              reset_num_timesteps: bool = True, progress_bar: bool = False) -> SelfMemoryPPO:
        return super().learn(total_timesteps=total_timesteps, callback=callback,
                             log_interval=log_interval, tb_log_name=tb_log_name,
                             reset_num_timesteps=reset_num_timesteps, progress_bar=progress_bar)


def _is_tensor_obs(obs) -> bool:
    return isinstance(obs, th.Tensor) or (isinstance(obs, dict) and
                                          any(isinstance(v, th.Tensor) for v in obs.values()))


def _obs_tensor(obs, device: th.device):
    """A VecEnv's observations as tensors on ``device``: numpy arrays (or dicts of them) as
    SB3's ``obs_as_tensor``; tensors moved (a no-op where they already are)."""
    if isinstance(obs, th.Tensor):
        return obs.to(device)
    if isinstance(obs, dict) and _is_tensor_obs(obs):
        return {k: th.as_tensor(v, device=device) for k, v in obs.items()}
    return obs_as_tensor(obs, device)


def _stack_obs(observations: list, device: th.device):
    """Single observations (arrays, tensors, or dicts of them) as one batch on ``device``."""
    first = observations[0]
    if isinstance(first, dict):
        return {k: _stack_obs([o[k] for o in observations], device) for k in first}
    if isinstance(first, th.Tensor):
        return th.stack(observations).to(device)
    return th.as_tensor(np.stack(observations), device=device)
