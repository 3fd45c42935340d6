"""The torch backend of the batched engine: the same trajectories as numpy, on the CPU."""

import numpy as np
import pytest
import torch
from memagent.envs import ENVS, make_engine

WORLDS = [(env_id, mode) for env_id in ENVS for mode in ("symbolic", "pixels")]
#: every test runs on the CPU; a machine with a GPU checks the CUDA backend too
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _run_engines(env_id, mode, n=32, steps=150, seed=3, device="cpu", **kwargs):
    a = make_engine(env_id, n, seed=seed, obs_mode=mode, **kwargs)
    b = make_engine(env_id, n, seed=seed, obs_mode=mode, device=device, **kwargs)
    assert b.device == torch.device(device) and a.device is None
    rng = np.random.default_rng(seed)
    ends = 0
    for t in range(steps):
        np.testing.assert_array_equal(a.observe(), b.observe().cpu().numpy(), err_msg=f"{env_id} {mode} t={t}")
        act = rng.integers(0, a.n_actions, n)
        out_a = a.step(act)
        for x, y in zip(out_a, b.step(torch.as_tensor(act)), strict=True):
            np.testing.assert_array_equal(x, y.cpu().numpy(), err_msg=f"{env_id} {mode} t={t}")
        np.testing.assert_array_equal(a.t, b.t.cpu().numpy())
        # the finished worlds, and every 7th step a few more (resets mid-episode too)
        done = np.flatnonzero(out_a[1] | (a.t >= a.max_steps) | ((t % 7 == 6) & (np.arange(n) % 5 == 0)))
        if len(done):
            ends += len(done)
            a.reset(done)
            b.reset(torch.as_tensor(done, device=device))
            np.testing.assert_array_equal(a.observe(done), b.observe(torch.as_tensor(done, device=device)).cpu().numpy())
    assert ends


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("env_id,mode", WORLDS)
def test_engine_torch_matches_numpy(env_id, mode, device):
    torch.set_num_threads(1)
    _run_engines(env_id, mode, device=device)


def test_engine_torch_matches_numpy_options():
    _run_engines("memagent/Screens-v0", "pixels", random_start=True, n_distractors=6)
    _run_engines("memagent/TMaze-v0", "symbolic", n_cues=5, penalty=-0.5)
    _run_engines("memagent/KeyDoor-v0", "pixels", view_size=5, image_size=48)


def test_engine_to_errors():
    eng = make_engine("memagent/TMaze-v0", 2, device="cpu")
    with pytest.raises(ValueError, match="already on cpu"):
        eng.to("cpu")
    with pytest.raises(ValueError, match="device must be"):
        make_engine("memagent/TMaze-v0", 2, device="gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device; pass device='cpu'"):
            make_engine("memagent/TMaze-v0", 2, device="cuda")
    with pytest.raises(ValueError, match="action must be in 0..3"):
        eng.step(torch.tensor([0, 4]))
    with pytest.raises(ValueError, match="actions must be integers"):
        eng.step(torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"shape \(n_envs,\) = \(2,\)"):
        eng.step(torch.zeros(3, dtype=torch.long))


def test_engine_torch_leaves_global_rng_alone():
    state = torch.random.get_rng_state()
    eng = make_engine("memagent/Screens-v0", 4, seed=0, device="cpu")
    eng.step(torch.tensor([2, 2, 0, 1]))
    eng.observe()
    assert torch.equal(state, torch.random.get_rng_state())


def test_render_frame_on_torch_engine():
    for env_id in ENVS:
        a, b = make_engine(env_id, 2, seed=1), make_engine(env_id, 2, seed=1, device="cpu")
        np.testing.assert_array_equal(a.render_frame(1), b.render_frame(1))


def _vec_pair(env_id, mode, n, seed, **kwargs):
    from memagent.envs import make_vec

    return (make_vec(env_id, n, seed=seed, obs_mode=mode, **kwargs),
            make_vec(env_id, n, seed=seed, obs_mode=mode, device="cpu", **kwargs))


@pytest.mark.parametrize("env_id,mode", WORLDS)
def test_vec_device_matches_numpy(env_id, mode):
    """Same seed, same actions: the same obs, rewards, dones and infos (SB3's autoreset)."""
    from memagent.envs.scripted import KeyDoorScript, RecallScript, TMazeScript

    torch.set_num_threads(1)
    n, seed = 24, 5
    limit = 40 if "L1000" in env_id or "L100" in env_id else None
    a, b = _vec_pair(env_id, mode, n, seed, max_episode_steps=limit)
    script = {"TMaze": TMazeScript, "KeyDoor": KeyDoorScript, "RecallSequence": RecallScript}.get(
        env_id.split("/")[1].split("-")[0])
    policy = script(n, seed=0) if script and mode == "symbolic" and "Random" not in env_id else None
    oa, ob = a.reset(), b.reset()
    assert isinstance(ob, torch.Tensor) and ob.dtype == torch.as_tensor(oa).dtype
    rng = np.random.default_rng(seed)
    starts, ends, wins = np.ones(n, dtype=bool), 0, 0
    for t in range(120):
        np.testing.assert_array_equal(oa, ob.numpy(), err_msg=f"t={t}")
        act = rng.integers(0, a.action_space.n, n)
        if policy is not None and t % 3:    # mostly the script, so episodes succeed too
            act = policy(oa, starts)
        oa, ra, da, ia = a.step(act)
        ob, rb, db, ib = b.step(torch.as_tensor(act))
        assert rb.dtype == torch.float32 and db.dtype == torch.bool
        np.testing.assert_array_equal(ra, rb.numpy())
        np.testing.assert_array_equal(da, db.numpy())
        assert len(ia) == len(ib) == n
        for i in np.flatnonzero(da):
            x, y = ia[i], ib[i]
            assert x["is_success"] == y["is_success"]
            assert x["TimeLimit.truncated"] == y["TimeLimit.truncated"]
            assert (x["episode"]["r"], x["episode"]["l"]) == (y["episode"]["r"], y["episode"]["l"])
            np.testing.assert_array_equal(x["terminal_observation"], y["terminal_observation"].numpy())
            assert {k: v for k, v in x.items() if k not in ("terminal_observation", "episode")} == \
                {k: v for k, v in y.items() if k not in ("terminal_observation", "episode")}
            ends, wins = ends + 1, wins + x["is_success"]
        for i in np.flatnonzero(~da):
            assert ia[i] == ib[i]
        starts = da
    assert ends
    if policy is not None and limit is None:
        assert wins


def test_vec_device_bad_input():
    from memagent.envs import make_vec

    with pytest.raises(ValueError, match="reuse_obs is for the numpy VecEnv"):
        make_vec("memagent/TMaze-v0", 2, device="cpu", reuse_obs=True)
    with pytest.raises(ValueError, match="device must be"):
        make_vec("memagent/TMaze-v0", 2, device=3.5)


def test_step_infos_lazy():
    from memagent.envs import make_vec

    venv = make_vec("memagent/TMaze-v0", 8, seed=0, device="cpu")
    venv.reset()
    _, _, _, infos = venv.step(torch.zeros(8, dtype=torch.long))
    assert infos._built == {} and infos[3] == {} and len(infos[:]) == 8 and infos[-1] == {}
    with pytest.raises(IndexError):
        infos[8]
