"""MemoryPPO: learns the T-maze with memory, not without; SB3 API (save/load, predict,
evaluate_policy, TensorBoard); bad input raises errors that say what to change."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from memagent.agents.memory_ppo import MemoryPPO, kl_penalty, ppo_policy_loss
from memagent.envs import make_vec
from stable_baselines3.common.evaluation import evaluate_policy

from memagent import evaluation
from memagent.memory.recurrent import MemoryCore
from memagent.policies import MemoryActorCriticPolicy

ENV = "memagent/TMaze-v0"


def success_rate(model, n_episodes: int = 100, seed: int = 1000, **env_kwargs) -> float:
    """Deterministic success over ``n_episodes`` fresh T-maze episodes."""
    return evaluation.success_rate(model, make_vec(ENV, 8, seed=seed, **env_kwargs), n_episodes)


# Library defaults on the T-maze with the cue 5 steps before the choice, 50k steps. Tracked
# every 2 rollouts on seeds 0-4 (docs/policies.md, "Reliable learning"), greedy success
# first reached 100% at 12-32k (hopfield), 22-30k (gru), 16-24k (lstm) and stayed there to
# 50k on every seed. The nmn core (addressed write, its default since the fourth session)
# ended at 100% on seeds 0-7 of this exact test; with eq. 11's one-hot write one of 5 seeds
# fell back to chance at 42k. The hopfield core with the previous step beside its reads
# (previous=True, its default since the sixth session) solved 20 of seeds 0-22 at 50k (the
# core without it 23 of 23) and 22 of 23 at 80k (seed 14 at one door), so it gets 80k. (With
# ent_coef="lin_0.01", measured as a default in the tenth session: hopfield 4 of seeds 0-4 at
# 80k, 10 of seeds 0-9 at 120k; gru, lstm, nmn 5 of 5 at 50k.) Under the default since the
# eleventh session, ent_coef="lin_0.003": every core 5 of seeds 0-4 at these budgets, success
# 1.00 on each; no memory 0.52 at 20k. Under the twelfth session's defaults (one env sequence
# per minibatch, advantages centred): gru, lstm and nmn 5 of seeds 0-4 (1.00 each), hopfield
# 6 of seeds 0-6 at 80k (seed 2 at 0.48; 1.00 at 120k), so the hopfield core got 120k. On
# 2026-12-04 (a fresh install of the same pins: numpy 2.4.6, gymnasium 1.4.0, SB3 2.9.2, torch
# 2.13.0 and 2.14.1 alike) seed 0 ended at 0.52 at 120k and 1.00 at 160k (seed 1 1.00 at both),
# so it gets 160k; the hopfield core's drops are what kl_coef addresses (docs/policies.md).
# With kl_coef=0.1 (the default since the sixteenth session) seeds 0-1 of every core pass at
# these budgets unchanged.
BUDGET = {"hopfield": 160_000, "gru": 50_000, "lstm": 50_000, "nmn": 50_000}


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("memory", ["hopfield", "gru", "lstm", "nmn"])
def test_memory_solves_tmaze_with_library_defaults(memory, seed):
    model = MemoryPPO("MlpPolicy", make_vec(ENV, 8, seed=seed, length=5),
                      policy_kwargs=dict(memory=memory), seed=seed, device="cpu")
    model.learn(BUDGET[memory])
    assert success_rate(model, length=5) >= 0.95


def test_without_memory_stays_near_chance():
    model = MemoryPPO("MlpPolicy", make_vec(ENV, 8, seed=0), policy_kwargs=dict(memory=None),
                      seed=0, device="cpu")
    model.learn(20_000)
    assert success_rate(model) <= 0.65


def _short_model(memory="gru", **kwargs):
    return MemoryPPO("MlpPolicy", make_vec(ENV, 4, seed=0), n_steps=16, batch_size=32, n_epochs=2,
                     policy_kwargs=dict(memory=memory, memory_kwargs=kwargs), seed=0, device="cpu")


def _rollout_predictions(model, seed=5, steps=40):
    env = make_vec(ENV, 4, seed=seed)
    obs, state, starts, out = env.reset(), None, np.ones(4), []
    for _ in range(steps):
        actions, state = model.predict(obs, state, starts, deterministic=True)
        out.append(actions)
        obs, _, starts, _ = env.step(actions)
    return np.stack(out)


@pytest.mark.parametrize("memory", ["hopfield", "lstm", "gru", "nmn", None])
def test_save_load_continue(tmp_path, memory):
    kwargs = {"capacity": 64} if memory == "hopfield" else {}
    model = _short_model(memory, **kwargs)
    model.learn(256)
    model.save(tmp_path / "model.zip")
    loaded = MemoryPPO.load(tmp_path / "model.zip", env=make_vec(ENV, 4, seed=0), device="cpu")
    assert loaded.policy.memory_name == memory
    if memory == "hopfield":
        assert loaded.policy.memory.capacity == 64
    np.testing.assert_array_equal(_rollout_predictions(model), _rollout_predictions(loaded))
    obs = make_vec(ENV, 4, seed=3).reset()
    with torch.no_grad():
        t = torch.as_tensor(obs)
        starts = torch.ones(4)
        v1 = model.policy.predict_values(t, model.policy.initial_state(4), starts)
        v2 = loaded.policy.predict_values(t, loaded.policy.initial_state(4), starts)
    torch.testing.assert_close(v1, v2)
    before = [p.detach().clone() for p in loaded.policy.parameters()]
    loaded.learn(128, reset_num_timesteps=False)  # continue training
    assert loaded.num_timesteps == model.num_timesteps + 128
    assert any(not torch.equal(a, b) for a, b in zip(before, loaded.policy.parameters(), strict=True))


def test_same_seed_same_run():
    a = _short_model("hopfield").learn(128)  # SB3 seeds the global RNGs: one model at a time
    b = _short_model("hopfield").learn(128)
    for p, q in zip(a.policy.parameters(), b.policy.parameters(), strict=True):
        torch.testing.assert_close(p, q)


def test_evaluate_policy_and_tensorboard(tmp_path):
    model = MemoryPPO("MlpPolicy", make_vec(ENV, 2, seed=0), n_steps=16, batch_size=32, n_epochs=1,
                      policy_kwargs=dict(memory="gru"), tensorboard_log=str(tmp_path), seed=0,
                      device="cpu")
    seen = []

    from stable_baselines3.common.callbacks import BaseCallback

    class Count(BaseCallback):
        def _on_step(self):
            seen.append(self.num_timesteps)
            return True

    model.learn(64, callback=Count())
    assert seen[-1] == 64 and len(seen) == 32
    assert list(tmp_path.rglob("events.out.tfevents*"))
    mean, _ = evaluate_policy(model, make_vec(ENV, 2, seed=1), n_eval_episodes=4)
    assert np.isfinite(mean)
    single, state = model.predict(make_vec(ENV, 1, seed=0).reset()[0])  # one unbatched obs
    assert np.ndim(single) == 0 and isinstance(state, tuple)


def test_cnn_policy_on_pixels():
    env = make_vec(ENV, 2, seed=0, obs_mode="pixels")
    model = MemoryPPO("CnnPolicy", env, n_steps=8, batch_size=16, n_epochs=1,
                      policy_kwargs=dict(memory="hopfield"), seed=0, device="cpu")
    model.learn(16)
    assert type(model.policy.features_extractor).__name__ == "ScreenCNN"


class _WrongSize(MemoryCore):
    def __init__(self, input_dim):
        super().__init__()
        self.input_dim, self.output_dim = input_dim, 7  # but forward gives input_dim

    def initial_state(self, batch_size, device=None):
        return (torch.zeros(batch_size, device=device),)

    def forward(self, x, state, episode_starts):
        return x, state


class _DictEnv(gym.Env):
    observation_space = spaces.Dict({"a": spaces.Box(0, 1, (2,))})
    action_space = spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        return self.observation_space.sample(), {}

    def step(self, action):
        return self.observation_space.sample(), 0.0, True, False, {}


def test_bad_input_errors():
    env = make_vec(ENV, 2, seed=0)
    with pytest.raises(ValueError, match="known cores"):
        MemoryPPO("MlpPolicy", env, policy_kwargs=dict(memory="tranformer"), device="cpu")
    with pytest.raises(ValueError, match="output_dim=7"):
        MemoryPPO("MlpPolicy", env, policy_kwargs=dict(memory=_WrongSize), device="cpu")
    with pytest.raises(ValueError, match="memory_kwargs"):
        MemoryPPO("MlpPolicy", env, policy_kwargs=dict(memory="gru", memory_kwargs={"size": 3}),
                  device="cpu")
    with pytest.raises(ValueError, match="MultiInputPolicy"):
        MemoryActorCriticPolicy(_DictEnv.observation_space, spaces.Discrete(2), lambda _: 1e-3)
    with pytest.raises(ValueError, match="multiple of n_steps"):
        MemoryPPO("MlpPolicy", env, n_steps=128, batch_size=100, device="cpu")


def test_default_minibatch_is_one_env_sequence():
    """batch_size=None (the default) is n_steps: n_envs minibatches of one sequence an epoch."""
    seen = []
    model = MemoryPPO("MlpPolicy", make_vec(ENV, 4, seed=0), n_steps=16, n_epochs=2,
                      policy_kwargs=dict(memory="gru"), seed=0, device="cpu")
    assert model.batch_size == 16
    get = model.rollout_buffer.get

    def spy(*args, **kwargs):
        for batch in get(*args, **kwargs):
            seen.append(batch.advantages.shape)
            yield batch

    model.rollout_buffer.get = spy
    model.learn(64)
    assert seen == [(16,)] * 8  # 4 envs x 2 epochs, each one env's 16 steps


def test_bench_commands_smoke(tmp_path, capsys):
    import json

    from memagent.cli import main

    out = tmp_path / "policies.json"
    assert main(["bench", "policies", "--cores", "gru,hopfield", "--n-envs", "2", "--n-steps", "8",
                 "--rollouts", "1", "--repeats", "2", "--env", "memagent/TMaze-v0,memagent/TMaze-L25-v0",
                 "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    rows = data["rows"]
    assert [r[2] for r in rows] == ["none (MLP)", "lstm", "gru", "hopfield"] * 2
    assert [r[0] for r in rows] == ["TMaze-v0"] * 4 + ["TMaze-L25-v0"] * 4
    assert all(r[4] > 0 for r in rows)
    assert all(len(v) == 2 for v in data["rates"]["memagent/TMaze-v0"]["samples"].values())
    assert [r[5] for r in rows if r[1] == "SB3 PPO"] == [1.0, 1.0]  # ratios against the same run's PPO
    # the batch column is what each agent trained with: MemoryPPO one env's 8 steps (its
    # default minibatch is one sequence), PPO its 64 capped at the rollout's 2 x 8 samples
    assert {r[3] for r in rows if r[1] == "memagent MemoryPPO"} == {"1 envs x 8 steps"}
    assert {r[3] for r in rows if r[1] == "SB3 PPO"} == {"16 steps"}
    rates = data["rates"]["memagent/TMaze-v0"]
    per_round = rates["vs_recurrent_ppo_per_round"]
    assert per_round["recurrent-ppo"] == [1.0, 1.0]
    assert per_round["gru"] == [g / r for g, r in zip(rates["samples"]["gru"],
                                                      rates["samples"]["recurrent-ppo"], strict=True)]
    assert main(["bench", "policies", "--repeats", "0"]) == 2
    assert main(["bench", "delay", "--lengths", "10,25", "--cores", "hopfield", "--budget", "64",
                 "--episodes", "2", "--n-envs", "2", "--n-steps", "8", "--transfer"]) == 0
    assert "L=25" in capsys.readouterr().out
    assert main(["bench", "delay", "--lengths", "7"]) == 2  # a length with no registered maze


def test_checkpoint_saved_on_cuda_loads_on_cpu(tmp_path, monkeypatch):
    """A zip written on a GPU machine (every tensor tagged ``cuda:0``) loads with device="cpu".

    Without a GPU, the CUDA tags are written by patching torch's storage location tag, which
    is exactly what ``torch.save`` records for tensors on a GPU.
    """
    import zipfile

    import torch.serialization

    model = _short_model("gru")
    model.learn(128)
    monkeypatch.setattr(torch.serialization, "location_tag", lambda storage: "cuda:0")
    model.save(tmp_path / "cuda.zip")
    monkeypatch.undo()
    with zipfile.ZipFile(tmp_path / "cuda.zip") as zf:
        raw = zf.read("policy.pth")
    assert b"cuda:0" in raw
    if not torch.cuda.is_available():  # the tags are real: a plain load needs a GPU
        import io

        with pytest.raises(RuntimeError, match="CUDA"):
            torch.load(io.BytesIO(raw), weights_only=True)
    loaded = MemoryPPO.load(tmp_path / "cuda.zip", env=make_vec(ENV, 4, seed=0), device="cpu")
    assert all(p.device.type == "cpu" for p in loaded.policy.parameters())
    np.testing.assert_array_equal(_rollout_predictions(model), _rollout_predictions(loaded))


def test_ent_coef_takes_a_schedule_of_the_progress_remaining():
    """``ent_coef`` may be a schedule, as ``learning_rate`` and ``clip_range`` are: every
    update reads it at the progress remaining (rl-zoo's ``"lin_0.01"`` through the CLI)."""
    seen = []

    def schedule(progress):
        seen.append(progress)
        return 0.01 * progress

    env = make_vec("memagent/TMaze-v0", 2, seed=0)
    model = MemoryPPO("MlpPolicy", env, n_steps=16, batch_size=32, n_epochs=1, ent_coef=schedule,
                      policy_kwargs=dict(memory="gru"), seed=0)
    model.learn(3 * 16 * 2, log_interval=1000)  # three rollouts; no dump clears the record
    assert seen == pytest.approx([2 / 3, 1 / 3, 0.0])
    assert model.logger.name_to_value["train/ent_coef"] == 0.0
    with pytest.raises(ValueError, match="ent_coef must be a number or a schedule"):
        MemoryPPO("MlpPolicy", env, ent_coef="0.01 please", policy_kwargs=dict(memory="gru"))


@pytest.mark.parametrize("mode, moves", [("center", False), (False, True), (True, False)])
def test_normalize_advantage_center_subtracts_the_minibatch_mean(mode, moves):
    """With every advantage the same constant, "center" (and SB3's True) leave the action head
    untouched (the policy loss is 0, and there is no entropy bonus and no KL penalty, which
    would pull on the head once the shared layers move), False pushes it."""
    model = MemoryPPO("MlpPolicy", make_vec(ENV, 4, seed=0), n_steps=16, batch_size=32, n_epochs=1,
                      ent_coef=0.0, kl_coef=0.0, learning_rate=1e-3, normalize_advantage=mode,
                      policy_kwargs=dict(memory="gru"), seed=0, device="cpu")  # (lin_ would be 0 at the one update)
    compute = model.rollout_buffer.compute_returns_and_advantage

    def constant(*args, **kwargs):
        compute(*args, **kwargs)
        model.rollout_buffer.advantages.fill_(5.0)

    model.rollout_buffer.compute_returns_and_advantage = constant
    before = [p.detach().clone() for p in model.policy.action_net.parameters()]
    model.learn(64)
    after = list(model.policy.action_net.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(after, before, strict=True)) is moves
    with pytest.raises(ValueError, match="normalize_advantage must be 'center'"):
        MemoryPPO("MlpPolicy", make_vec(ENV, 4, seed=0), normalize_advantage="mean",
                  policy_kwargs=dict(memory="gru"))


def test_dual_clip_stops_a_negative_advantage_whose_ratio_ran_away():
    """A < 0 at ratio 5: SB3's objective pushes with weight 5 |A|, dual_clip=3 not at all;
    below the dual clip (ratio 2) both push alike; A > 0 is untouched by the dual clip."""
    adv = torch.tensor([-1.0, -1.0, 1.0])
    log_r = torch.log(torch.tensor([5.0, 2.0, 0.5])).requires_grad_()
    grads = {}
    for dual in (None, 3.0):
        log_r.grad = None
        ppo_policy_loss(adv, log_r, 0.2, dual).backward()
        grads[dual] = log_r.grad.clone()
    torch.testing.assert_close(grads[None], torch.tensor([5.0, 2.0, -0.5]) / 3)
    torch.testing.assert_close(grads[3.0], torch.tensor([0.0, 2.0, -0.5]) / 3)


def test_kl_penalty_pulls_every_ratio_back_to_one_and_is_zero_there():
    log_r = torch.log(torch.tensor([0.5, 1.0, 2.0])).requires_grad_()
    value = kl_penalty(log_r)
    value.backward()
    expected = ((0.5 - 1 - np.log(0.5)) + 0 + (2 - 1 - np.log(2))) / 3
    assert float(value.detach()) == pytest.approx(expected)
    g = log_r.grad  # d/dlog r of (r - 1 - log r) = r - 1: descent raises r < 1, lowers r > 1
    torch.testing.assert_close(g, torch.tensor([-0.5, 0.0, 1.0]) / 3)


@pytest.mark.parametrize("kwargs, match", [({"dual_clip": 1.0}, "dual_clip must be a number > 1"),
                                           ({"kl_coef": -1}, "kl_coef must be a number >= 0")])
def test_dual_clip_and_kl_coef_bad_values_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MemoryPPO("MlpPolicy", make_vec(ENV, 2, seed=0), policy_kwargs=dict(memory="gru"), **kwargs)
