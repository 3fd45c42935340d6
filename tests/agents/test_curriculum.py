"""CurriculumCallback: the env switches at the right step, between rollouts, and training goes on."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from memagent.agents.memory_ppo import MemoryPPO
from memagent.envs import make_vec
from stable_baselines3.common.callbacks import BaseCallback, CallbackList

from memagent.curriculum import CurriculumCallback, length_stages, parse_curriculum

ENV = "memagent/TMaze-v0"
N_ENVS, N_STEPS = 2, 16  # a rollout is 32 steps


class Lengths(BaseCallback):
    """The corridor length and step count of every rollout, and the parameters after each."""

    def __init__(self):
        super().__init__()
        self.rows, self.params = [], []

    def _on_rollout_start(self) -> None:
        self.rows.append((self.num_timesteps, int(self.model.env.engine.length_range[1])))

    def _on_rollout_end(self) -> None:
        self.params.append(torch.cat([p.detach().flatten() for p in self.model.policy.parameters()]))

    def _on_step(self) -> bool:
        return True


def _model(seed=0):
    env = make_vec(ENV, N_ENVS, seed=seed)  # length 10: the model's own env
    return MemoryPPO("MlpPolicy", env, n_steps=N_STEPS, batch_size=N_STEPS, n_epochs=1, seed=seed,
                     policy_kwargs=dict(memory="hopfield", memory_kwargs=dict(capacity=64)),
                     device="cpu")


def _stages(seed=0):
    return length_stages(ENV, [(3, 64), (5, 40)], n_envs=N_ENVS, seed=seed)  # ends at 64 and 104


def test_length_switches_at_rollout_ends_and_training_goes_on():
    model, probe = _model(), Lengths()
    curriculum = CurriculumCallback(_stages())
    model.learn(192, callback=CallbackList([curriculum, probe]))
    # stage 0 (length 3) for steps 0-63, stage 1 (length 5) from 64 until the first rollout
    # end at or after 104 (128), then the model's own env (length 10)
    assert probe.rows == [(0, 3), (32, 3), (64, 5), (96, 5), (128, 10), (160, 10)]
    assert model.num_timesteps == 192 and model.env.engine.length_range == (10, 10)
    assert all(not torch.equal(a, b) for a, b in zip(probe.params[:-1], probe.params[1:], strict=True))  # it keeps training
    assert np.isfinite(probe.params[-1].numpy()).all()
    # the memory starts fresh in a new env: no stored step of a length-5 episode is read at 10
    assert int(model._last_memory_state[1].max()) <= 64


def test_a_seeded_curriculum_run_reproduces():
    params = []
    for _ in range(2):
        model = _model(seed=1)
        model.learn(128, callback=CurriculumCallback(_stages(seed=1)))
        params.append(torch.cat([p.detach().flatten() for p in model.policy.parameters()]))
    assert torch.equal(*params)


def test_continued_learn_picks_up_in_the_right_stage():
    model, probe = _model(), Lengths()
    curriculum = CurriculumCallback(_stages())
    model.learn(32, callback=CallbackList([curriculum, probe]))
    model.learn(96, callback=CallbackList([curriculum, probe]), reset_num_timesteps=False)  # to 128
    assert probe.rows == [(0, 3), (32, 3), (64, 5), (96, 5)]
    model.learn(64, callback=CallbackList([curriculum, probe]), reset_num_timesteps=False)  # to 192
    assert probe.rows[-2:] == [(128, 10), (160, 10)]
    # a fresh callback on a model already past the stages trains on the model's own env
    late = Lengths()
    model.learn(32, callback=CallbackList([CurriculumCallback(_stages()), late]), reset_num_timesteps=False)
    assert late.rows == [(192, 10)]


def test_bad_stages_say_what_to_fix():
    with pytest.raises(ValueError, match=r"stages\[0\] must be \(steps, make_env\)"):
        CurriculumCallback([(0, lambda: None)])
    model = _model()
    wrong_n = CurriculumCallback([(64, lambda: make_vec(ENV, 3, seed=0, length=3))])
    with pytest.raises(ValueError, match="n_envs=2"):
        model.learn(32, callback=wrong_n)
    other_space = CurriculumCallback([(64, lambda: make_vec(ENV, N_ENVS, seed=0, obs_mode="pixels"))])
    with pytest.raises(ValueError, match="spaces"):
        _model().learn(32, callback=other_space)


@pytest.mark.parametrize("text, message", [
    ("10", "LENGTH:STEPS"), ("10:x", "LENGTH:STEPS"), ("10:0", r"stage 0 must be \[length, steps\]"),
    ("10:100,0:5", r"stage 1 must be"),
])
def test_parse_curriculum_errors(text, message):
    with pytest.raises(ValueError, match=message):
        parse_curriculum(text)


def test_parse_curriculum():
    assert parse_curriculum("10:40_000, 100:100000") == [[10, 40000], [100, 100000]]
