"""A kill in the middle of a checkpoint write, and Ctrl-C during training."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time

from .helpers import env_vars, train_env

# Train a tiny run, then save a second checkpoint whose write dies half way (os._exit, as a
# SIGKILL would): the half-written temporary file must not hide the first checkpoint.
KILL_SCRIPT = textwrap.dedent("""
    import os, sys
    from memagent import runs
    from memagent.cli import main
    run_dir = sys.argv[1]
    assert main(["train", "--env", sys.argv[2], "--agent", "ppo", "--steps", "256", "--n-envs", "2",
                 "--run-dir", run_dir, "--no-progress"]) == 0
    from stable_baselines3 import PPO
    model = PPO.load(f"{run_dir}/model.zip")
    def dying_save(path, *args, **kwargs):
        with open(path, "wb") as fh:
            fh.write(b"PK\\x03\\x04 half a zip")
            fh.flush()
        os._exit(9)
    model.save = dying_save
    runs.save_checkpoint(model, run_dir, 99_999)
""")


def test_kill_during_checkpoint_write_leaves_the_previous_one(tmp_path):
    run_dir = tmp_path / "run"
    res = subprocess.run([sys.executable, "-c", KILL_SCRIPT, str(run_dir), train_env()],
                         capture_output=True, text=True, env=env_vars(), timeout=300)
    assert res.returncode == 9, res.stderr
    leftovers = list((run_dir / "checkpoints").glob(".model_99999.zip.*.tmp"))
    assert leftovers, "the killed write should have left its temporary file"
    assert not (run_dir / "checkpoints" / "model_99999.zip").exists()

    from stable_baselines3 import PPO

    from memagent import runs

    assert [s for s, _ in runs.checkpoints(run_dir)] == [256]
    path, _ = runs.latest_model(run_dir)
    model = PPO.load(path)
    assert model.num_timesteps == 256


def test_ctrl_c_saves_and_exits_cleanly(tmp_path):
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "memagent", "train", "--env", train_env(), "--agent", "ppo",
         "--steps", "10000000", "--n-envs", "2", "--run-dir", str(run_dir), "--no-progress"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env_vars())
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            state = run_dir / "state.json"
            if state.exists() and json.loads(state.read_text()).get("status") == "running":
                break
            time.sleep(0.2)
        time.sleep(1.0)  # let it train a little
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "--resume" in err
    state = json.loads((run_dir / "state.json").read_text())
    assert state["status"] == "interrupted" and 0 < state["steps"] < 10_000_000
    assert (run_dir / "model.zip").exists()
    assert (run_dir / "checkpoints" / f"model_{state['steps']}.zip").exists()
