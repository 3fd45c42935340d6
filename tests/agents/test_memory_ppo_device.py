"""MemoryPPO on a device VecEnv (``make_vec(..., device="cpu")``): the tensor path, on the CPU."""

import math

import numpy as np
import pytest
import torch
from memagent.agents.memory_ppo import MemoryPPO
from memagent.envs import make_vec


def _model(device, memory="gru", env_id="memagent/TMaze-v0", n_envs=16, policy="MlpPolicy", **kwargs):
    venv = make_vec(env_id, n_envs, seed=0, device=device, **kwargs)
    return MemoryPPO(policy, venv, n_steps=32, batch_size=128, n_epochs=2, seed=0, device="cpu",
                     policy_kwargs=dict(memory=memory))


@pytest.mark.parametrize("memory", ["gru", "hopfield"])
def test_trains_on_device_env(memory):
    torch.set_num_threads(1)
    model = _model("cpu", memory).learn(4096)
    logs = model.logger.name_to_value
    for key in ("train/value_loss", "train/policy_gradient_loss", "train/entropy_loss", "train/loss"):
        assert math.isfinite(logs[key]), key
    buf = model.rollout_buffer
    assert buf.rewards.device.type == "cpu" and torch.isfinite(buf.advantages).all()
    assert model.num_timesteps == 4096 and len(model.ep_info_buffer) > 0
    assert isinstance(model._last_obs, torch.Tensor)


def test_numpy_and_device_env_same_rollout():
    """Same seed: the numpy VecEnv and the device VecEnv give the same rollout and update."""
    torch.set_num_threads(1)
    a, b = _model(None).learn(2048), _model("cpu").learn(2048)
    for name in ("rewards", "advantages", "returns", "values_t", "log_probs", "episode_starts"):
        torch.testing.assert_close(getattr(a.rollout_buffer, name), getattr(b.rollout_buffer, name),
                                   rtol=0, atol=0, msg=name)
    np.testing.assert_array_equal(a.rollout_buffer.observations.numpy(), b.rollout_buffer.observations.numpy())
    for pa, pb in zip(a.policy.parameters(), b.policy.parameters(), strict=True):
        torch.testing.assert_close(pa, pb, rtol=0, atol=0)
    assert list(a.ep_success_buffer) == list(b.ep_success_buffer)


def test_truncation_bootstrap_same_on_both_paths():
    """A short time limit: every episode truncates, the bootstrapped rewards agree."""
    torch.set_num_threads(1)
    a = _model(None, env_id="memagent/TMaze-L25-v0", max_episode_steps=8).learn(1024)
    b = _model("cpu", env_id="memagent/TMaze-L25-v0", max_episode_steps=8).learn(1024)
    torch.testing.assert_close(a.rollout_buffer.rewards, b.rollout_buffer.rewards, rtol=0, atol=0)
    assert (a.rollout_buffer.rewards > 0).any()   # gamma * V(terminal) added somewhere


def test_cnn_policy_on_device_pixels():
    torch.set_num_threads(1)
    model = _model("cpu", "gru", n_envs=4, policy="CnnPolicy", obs_mode="pixels")
    model.learn(256)
    assert model.rollout_buffer.observations.shape[2:] == (3, 64, 64)
    assert math.isfinite(model.logger.name_to_value["train/value_loss"])


def test_make_venv_device_for_gridworlds_only():
    from dataclasses import replace

    from memagent.agents.sb3_adapter import make_venv
    from memagent.envs.vec import DeviceGridVecEnv, GridVecEnv

    from memagent.config import TrainConfig

    config = replace(TrainConfig(), env_id="memagent/TMaze-v0", n_envs=4)
    assert isinstance(make_venv(config, device="cpu"), DeviceGridVecEnv)
    assert type(make_venv(config)) is GridVecEnv


def test_bench_gpu_smoke(tmp_path):
    import json

    from memagent.cli import main

    out = tmp_path / "gpu.json"
    assert main(["bench", "gpu", "--sizes", "8", "16", "--ppo-sizes", "4", "--cores", "gru",
                 "--n-steps", "8", "--n-epochs", "1", "--repeats", "1", "--min-time", "0.05",
                 "--devices", "cpu", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert [r[:2] for r in data["engine_rows"]] == [[8, "numpy"], [8, "torch cpu"],
                                                    [16, "numpy"], [16, "torch cpu"]]
    assert [r[3] for r in data["train_rows"]] == ["numpy env", "numpy env", "device env"]
    assert all(r[4] > 0 for r in data["train_rows"]) and data["cuda_measured"] is False
    assert main(["bench", "gpu", "--sizes", "0"]) == 2
    if not torch.cuda.is_available():
        assert main(["bench", "gpu", "--devices", "cuda"]) == 2


def test_trained_on_device_env_saves_and_evaluates_on_numpy(tmp_path):
    from memagent.evaluation import success_rate

    torch.set_num_threads(1)
    model = _model("cpu", n_envs=4).learn(256)
    model.save(tmp_path / "m.zip")
    loaded = MemoryPPO.load(tmp_path / "m.zip", env=make_vec("memagent/TMaze-v0", 2, seed=1), device="cpu")
    assert 0.0 <= success_rate(loaded, make_vec("memagent/TMaze-v0", 2, seed=1), 4) <= 1.0


def test_sb3_cpu_advice_only_below_the_auto_cuda_batch(monkeypatch):
    """SB3 warns that MLP policies train faster on the CPU; from AUTO_CUDA_MIN_ENVS envs a GPU
    measurably wins (README, `bench gpu`), so MemoryPPO asks SB3 for that advice only below."""
    from memagent.utils import AUTO_CUDA_MIN_ENVS

    asked = []
    monkeypatch.setattr(MemoryPPO, "_maybe_recommend_cpu", lambda self, name: asked.append(self.n_envs))
    for n in (2, AUTO_CUDA_MIN_ENVS - 1, AUTO_CUDA_MIN_ENVS):
        MemoryPPO("MlpPolicy", make_vec("memagent/TMaze-v0", n, seed=0), n_steps=8, seed=0,
                  device="cpu", policy_kwargs=dict(memory="gru"))
    assert asked == [2, AUTO_CUDA_MIN_ENVS - 1]
