"""What a new user hit in the run layer, one test each."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from memagent.cli import main

from .helpers import env_vars


class Result:
    def __init__(self, returncode, out, err):
        self.returncode, self.stdout, self.stderr = returncode, out, err


@pytest.fixture
def memagent(capsys):
    """The CLI in this process (no interpreter start per call): ``memagent(*args) -> Result``."""

    def run(*args, cwd=None):
        old = os.getcwd()
        if cwd is not None:
            os.chdir(cwd)
        try:
            code = main([str(a) for a in args])
        finally:
            os.chdir(old)
        out = capsys.readouterr()
        return Result(code, out.out, out.err)

    return run


def one_line_error(res, command: str) -> str:
    assert res.returncode == 2, (res.stdout, res.stderr)
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"memagent {command}: error: "), res.stderr
    return lines[0]

SMALL = ["--set", "agent_kwargs.n_steps=64", "--set", "agent_kwargs.batch_size=64", "--no-progress"]


def test_dqn_on_cartpole_trains_and_reports_the_return(tmp_path, memagent):
    """Float observations: no tile codes (was an OverflowError); no success signal: the return."""
    res = memagent("train", "--agent", "dqn", "--env", "CartPole-v1", "--steps", 600, "--n-envs", 2,
                   "--set", "agent_kwargs.learning_starts=200", "--run-dir", tmp_path / "dqn", "--no-progress")
    assert res.returncode == 0, res.stderr
    assert "training mean return (last" in res.stdout and "n/a" not in res.stdout
    res = memagent("eval", tmp_path / "dqn", "--episodes", 2)
    assert res.returncode == 0, res.stderr


def test_a_failed_start_leaves_no_run_and_latest_skips_failed_runs(tmp_path, memagent):
    root = tmp_path / "runs"
    res = memagent("train", "--agent", "ppo", "--steps", 128, "--n-envs", 2, *SMALL, "--runs-root", root)
    assert res.returncode == 0, res.stderr
    good = next(root.iterdir())
    # the man agent on an env without state ids fails after the config resolved
    line = one_line_error(memagent("train", "--agent", "man", "--env", "memagent/TMaze-v0",
                                   "--runs-root", root), "train")
    assert "needs an env with state ids" in line
    assert list(root.iterdir()) == [good]
    # a run that failed later is marked failed: latest skips it, runs says so
    bad = root / "zz-failed"
    bad.mkdir()
    (bad / "config.json").write_text(json.dumps({"agent": "ppo"}))
    (bad / "state.json").write_text(json.dumps({"status": "failed", "error": "boom"}))
    res = memagent("eval", "latest", "--episodes", 2, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert good.name in res.stdout
    res = memagent("runs", "--dir", root)
    assert "failed" in res.stdout and "running" not in res.stdout


def test_a_run_whose_process_died_is_not_shown_running(tmp_path, memagent):
    import socket

    run = tmp_path / "r"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"agent": "ppo", "total_timesteps": 10}))
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = int(proc.stdout)  # a process that has exited
    (run / "state.json").write_text(json.dumps({"status": "running", "pid": dead, "host": socket.gethostname()}))
    res = memagent("runs", "--dir", tmp_path, "--json")
    assert json.loads(res.stdout)["status"] == "died"


def test_refused_resume_leaves_config_json_alone(tmp_path, memagent):
    run = tmp_path / "r"
    assert memagent("train", "--agent", "ppo", "--steps", 256, "--n-envs", 2, *SMALL, "--run-dir", run).returncode == 0
    before = (run / "config.json").read_bytes()
    res = memagent("train", "--resume", run, "--steps", 128, "--no-progress")
    assert res.returncode == 0 and "pass --steps N (a larger total)" in res.stdout
    assert (run / "config.json").read_bytes() == before


def test_resume_summary_and_checkpoints_at_multiples(tmp_path, memagent):
    """After a resume: 'N more steps (step M in all)', and checkpoints stay at multiples of
    checkpoint_every (a resume from step 384 checkpoints at 512, not 384 + 256)."""
    run = tmp_path / "r"
    res = memagent("train", "--agent", "ppo", "--steps", 384, "--n-envs", 2, *SMALL, "--run-dir", run,
                   "--set", "checkpoint_every=256", "--set", "keep_checkpoints=10")
    assert res.returncode == 0, res.stderr
    res = memagent("train", "--resume", run, "--steps", 1024, "--no-progress")
    assert res.returncode == 0, res.stderr
    assert "completed 640 more steps (step 1,024 in all)" in res.stdout
    steps = sorted(int(p.stem.split("_")[1]) for p in (run / "checkpoints").glob("model_*.zip"))
    assert steps == [256, 384, 512, 768, 1024]


def test_runs_says_which_success_is_which_and_survives_a_closed_pipe(tmp_path, memagent):
    root = tmp_path / "runs"
    res = memagent("train", "--agent", "ppo", "--steps", 128, "--n-envs", 2, *SMALL, "--runs-root", root,
                   "--eval-episodes", 4)
    assert res.returncode == 0, res.stderr
    res = memagent("runs", "--dir", root)
    assert "train success/return" in res.stdout and "eval success" in res.stdout and "greedy" in res.stdout
    row = json.loads(memagent("runs", "--dir", root, "--json").stdout)
    assert row["eval_success"] is not None and "train_success" in row
    run = next(root.iterdir())
    for i in range(300):  # enough lines to fill the pipe
        (root / f"copy{i:03d}").mkdir()
        (root / f"copy{i:03d}" / "config.json").write_bytes((run / "config.json").read_bytes())
    res = subprocess.run(f"{sys.executable} -m memagent runs --json --dir {root} | head -n 1", shell=True,
                         capture_output=True, text=True, env=env_vars())
    assert res.returncode == 0 and len(res.stdout.splitlines()) == 1
    assert "Traceback" not in res.stderr and "BrokenPipe" not in res.stderr
