"""MemoryPPO on every observation space a gymnasium env gives: Box, Discrete, MultiDiscrete,
MultiBinary, and Dict through "MultiInputPolicy"; spaces it cannot take raise errors naming the
fix. Each training run is a few rollouts: these check plumbing, not learning."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from memagent.agents.memory_ppo import MemoryPPO
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.preprocessing import preprocess_obs

import memagent  # noqa: F401  (registers the memagent/... ids)
from memagent.observations import one_hot_encoders, preprocess
from memagent.policies import MemoryActorCriticPolicy, MemoryMultiInputActorCriticPolicy


class ViewAndHeading(gym.ObservationWrapper):
    """The T-maze's observation split into a Dict: the 3x3 view and the heading."""

    def __init__(self, env):
        super().__init__(env)
        nvec = env.observation_space.nvec
        self.observation_space = spaces.Dict({
            "view": spaces.MultiDiscrete(nvec[:-1]),  # the 3x3 tiles, row by row
            "heading": spaces.Discrete(int(nvec[-1])),
        })

    def observation(self, obs):
        return {"view": obs[:-1], "heading": int(obs[-1])}


class _CueEnv(gym.Env):
    """Remember the first observation: a cue, then blanks, then say which cue it was.

    ``kind`` picks the observation space: ``"discrete"`` (Discrete(3): blank, cue 0, cue 1) or
    ``"binary"`` (MultiBinary(3): one bit per meaning)."""

    action_space = spaces.Discrete(2)

    def __init__(self, kind="discrete", delay=3):
        self.kind, self.delay = kind, delay
        self.observation_space = spaces.Discrete(3) if kind == "discrete" else spaces.MultiBinary(3)

    def _obs(self, code):
        if self.kind == "discrete":
            return code
        return np.eye(3, dtype=np.int8)[code]

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.cue, self.t = int(self.np_random.integers(2)), 0
        return self._obs(1 + self.cue), {}

    def step(self, action):
        self.t += 1
        if self.t < self.delay:
            return self._obs(0), 0.0, False, False, {}
        return self._obs(0), float(action == self.cue), True, False, {}


def _dict_venv(n_envs=4, max_episode_steps=None):
    return make_vec_env("memagent/TMaze-v0", n_envs, seed=0, wrapper_class=ViewAndHeading,
                        env_kwargs=None if max_episode_steps is None else
                        {"max_episode_steps": max_episode_steps})


def _replayed_log_probs_match(model):
    """Collect one rollout; before any update, every minibatch recomputed from the buffer's
    observations (time-major, the same envs in every key) gives the rollout's log-probs."""
    _, callback = model._setup_learn(model.n_steps * model.n_envs, None)
    assert model.collect_rollouts(model.env, callback, model.rollout_buffer, model.n_steps)
    envs_per_batch = model.batch_size // model.n_steps
    with torch.no_grad():
        for batch in model.rollout_buffer.get(envs_per_batch, model.policy.select_state):
            actions = batch.actions.long().flatten()
            _, log_prob, _ = model.policy.evaluate_sequence(batch.observations, actions,
                                                            batch.memory_state, batch.episode_starts)
            torch.testing.assert_close(log_prob, batch.old_log_prob, atol=1e-5, rtol=1e-4)
    return True


def _predictions(model, venv, steps=20):
    obs, state, starts, out = venv.reset(), None, np.ones(venv.num_envs), []
    for _ in range(steps):
        actions, state = model.predict(obs, state, starts, deterministic=True)
        out.append(actions)
        obs, _, starts, _ = venv.step(actions)
    return np.stack(out)


def _train_save_load(model, venv_fn, tmp_path):
    model.learn(3 * model.n_steps * model.n_envs)
    model.save(tmp_path / "model.zip")
    loaded = MemoryPPO.load(tmp_path / "model.zip", env=venv_fn(), device="cpu")
    np.testing.assert_array_equal(_predictions(model, venv_fn()), _predictions(loaded, venv_fn()))
    return loaded


@pytest.mark.parametrize("memory", ["gru", "hopfield"])
def test_dict_observations_train_save_load_predict(tmp_path, memory):
    # a time limit of 5 steps: every episode is truncated, so the truncation bootstrap reads
    # a Dict terminal observation through the memory
    model = MemoryPPO("MultiInputPolicy", _dict_venv(max_episode_steps=5), n_steps=16,
                      batch_size=32, n_epochs=2, policy_kwargs=dict(memory=memory), seed=0,
                      device="cpu")
    assert isinstance(model.policy, MemoryMultiInputActorCriticPolicy)
    assert type(model.policy.features_extractor).__name__ == "CombinedExtractor"
    assert _replayed_log_probs_match(model)
    loaded = _train_save_load(model, lambda: _dict_venv(max_episode_steps=5), tmp_path)
    assert isinstance(loaded.observation_space, spaces.Dict)
    single, _ = loaded.predict(ViewAndHeading(gym.make("memagent/TMaze-v0")).reset(seed=1)[0])
    assert np.ndim(single) == 0  # one unbatched Dict observation


def test_dict_one_hot_scatter_equals_sb3_preprocessing():
    space = _dict_venv(1).observation_space
    obs = {k: torch.as_tensor(np.stack([space[k].sample() for _ in range(6)])) for k in space.spaces}
    ours = preprocess(obs, space, one_hot_encoders(space))
    sb3 = preprocess_obs(obs, space)
    assert ours.keys() == sb3.keys()
    for key in ours:
        torch.testing.assert_close(ours[key], sb3[key].float())


@pytest.mark.parametrize("kind", ["discrete", "binary"])
def test_discrete_and_multibinary_observations(tmp_path, kind):
    def venv():
        return make_vec_env(lambda: gym.wrappers.TimeLimit(_CueEnv(kind), 10), 4, seed=0)

    model = MemoryPPO("MlpPolicy", venv(), n_steps=16, batch_size=32, n_epochs=2,
                      policy_kwargs=dict(memory="gru"), seed=0, device="cpu")
    assert _replayed_log_probs_match(model)
    _train_save_load(model, venv, tmp_path)


class _Spaces(gym.Env):
    action_space = spaces.Discrete(2)

    def __init__(self, observation_space):
        self.observation_space = observation_space

    def reset(self, *, seed=None, options=None):
        return self.observation_space.sample(), {}

    def step(self, action):
        return self.observation_space.sample(), 0.0, True, False, {}


def _policy(space, **kwargs):
    return MemoryActorCriticPolicy(space, spaces.Discrete(2), lambda _: 1e-3, **kwargs)


def test_observation_spaces_a_policy_cannot_take_raise_naming_the_fix():
    box = spaces.Box(0, 1, (2,))
    with pytest.raises(ValueError, match="got Tuple; wrap the env in gymnasium.wrappers.FlattenObservation"):
        _policy(spaces.Tuple([box, box]))
    with pytest.raises(ValueError, match="got Text"):
        _policy(spaces.Text(5))
    with pytest.raises(ValueError, match=r"observation_space\['pair'\] is a Tuple.*flatten"):
        MemoryMultiInputActorCriticPolicy(spaces.Dict({"pair": spaces.Tuple([box])}),
                                          spaces.Discrete(2), lambda _: 1e-3)
    with pytest.raises(ValueError, match="MultiInputPolicy"):
        _policy(spaces.Dict({"a": box}))
    with pytest.raises(ValueError, match=r"observation_space\['view'\] is a MultiDiscrete with nvec "
                                         r"of shape \(3, 3\).*nvec.ravel\(\)"):
        MemoryMultiInputActorCriticPolicy(spaces.Dict({"view": spaces.MultiDiscrete(np.full((3, 3), 5))}),
                                          spaces.Discrete(2), lambda _: 1e-3)
    with pytest.raises(ValueError, match="MlpPolicy"):
        MemoryPPO("MultiInputPolicy", make_vec_env(lambda: _Spaces(box), 1), device="cpu")
    with pytest.raises(ValueError, match="FlattenObservation"):
        MemoryPPO("MlpPolicy", make_vec_env(lambda: _Spaces(spaces.Tuple([box, box])), 1),
                  device="cpu")


def test_unknown_memory_kwargs_name_the_core_parameters():
    box = spaces.Box(0, 1, (2,))
    with pytest.raises(ValueError, match="no parameter 'capactiy'; its memory_kwargs are output_dim, "
                                         "heads, capacity"):
        _policy(box, memory="hopfield", memory_kwargs={"capactiy": 8})
    with pytest.raises(ValueError, match="no parameter 'hidden'.*hidden_size, tau, gamma"):
        _policy(box, memory="nmn", memory_kwargs={"hidden": 8})
    assert _policy(box, memory="nmn", memory_kwargs={"tau": 3}).memory.layer is not None


class _MixedDictEnv(gym.Env):
    """A Dict of a float Box and a Discrete code: only the Box has statistics to normalise."""

    observation_space = spaces.Dict({"x": spaces.Box(-1.0, 1.0, (2,), np.float32),
                                     "code": spaces.Discrete(3)})
    action_space = spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return {"x": self.np_random.uniform(-1, 1, 2).astype(np.float32), "code": 1}, {}

    def step(self, action):
        obs = {"x": self.np_random.uniform(-1, 1, 2).astype(np.float32), "code": 2}
        return obs, float(action), False, False, {}


def test_normalize_scales_rewards_and_leaves_categorical_observations_alone():
    """``normalize=True`` (the CartPoleNoVel preset's key) on a gridworld's ``MultiDiscrete``
    tile ids: SB3's ``VecNormalize`` refuses to normalise such observations, so only the
    rewards are scaled and the ids reach the policy unchanged; in a ``Dict`` only the float
    ``Box`` entries are normalised."""
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    from memagent.agent import get_agent
    from memagent.config import TrainConfig, resolve

    agent = get_agent("memory-ppo")(resolve(TrainConfig(normalize=True), {"normalize"}))
    venv, _ = agent._train_env()
    assert isinstance(venv, VecNormalize) and not venv.norm_obs and venv.norm_reward
    obs = venv.reset()
    np.testing.assert_array_equal(obs, venv.get_original_obs())
    assert obs.dtype.kind in "iu"  # tile ids, not running-mean z-scores
    rng = np.random.default_rng(0)
    for _ in range(30):
        _, rewards, _, _ = venv.step(rng.integers(0, 4, venv.num_envs))
    raw = venv.get_original_reward()
    assert np.any(raw != 0)
    scale = np.sqrt(venv.ret_rms.var + venv.epsilon)
    np.testing.assert_allclose(rewards, np.clip(raw / scale, -venv.clip_reward, venv.clip_reward),
                               rtol=1e-5)
    assert not np.allclose(rewards, raw)

    mixed = agent._normalize(DummyVecEnv([_MixedDictEnv] * 2), training=True)
    assert mixed.norm_obs and mixed.norm_obs_keys == ["x"]
    assert not agent._normalize(_dict_venv(2), training=True).norm_obs  # view + heading: codes only


def test_normalized_gridworld_run_evaluates_and_resumes(tmp_path):
    """A short normalised TMaze run evaluates greedily (the eval env copies the reward
    statistics, there are no observation statistics to copy) and resumes from its checkpoint."""
    import json

    from memagent.config import TrainConfig, resolve
    from memagent.experiment import run_experiment

    given = {"normalize", "total_timesteps", "n_envs", "agent_kwargs", "eval_every",
             "eval_episodes", "checkpoint_every"}
    config = resolve(TrainConfig(normalize=True, total_timesteps=64, n_envs=2,
                                 agent_kwargs={"n_steps": 16}, eval_every=32, eval_episodes=4,
                                 checkpoint_every=32), given)
    out = run_experiment(config, tmp_path / "run", progress=False, say=lambda _: None)
    assert out["status"] == "completed"
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert [c["step"] for c in results["curve"]] == [0, 32, 64]
    longer = resolve(TrainConfig(**{**config.__dict__, "total_timesteps": 96}), given)
    again = run_experiment(longer, tmp_path / "run", resume=True, progress=False, say=lambda _: None)
    assert again["status"] == "completed" and again["steps"] == 96
