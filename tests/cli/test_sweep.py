"""memagent sweep / report: a sweep killed mid-way resumes without re-running finished trials,
trials reproduce `memagent train`, a local Ray cluster through --address, bad input."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from .helpers import env_vars, memagent
from .test_bad_input import one_line_error

SWEEP = ["sweep", "--agent", "ppo", "--steps", 1024, "--n-envs", 2, "--set", "agent_kwargs.n_steps=64",
         "--eval-every", 512, "--eval-episodes", 8, "--seeds", "0-2"]


def _session_pids(sid: int) -> list[int]:
    out = subprocess.run(["ps", "-eo", "pid=,sid=,stat="], capture_output=True, text=True).stdout
    return [int(p) for p, s, stat in (line.split()[:3] for line in out.splitlines())
            if int(s) == sid and not stat.startswith("Z")]  # zombies are dead, awaiting wait()


def _kill_session(sid: int, timeout: float = 60) -> None:
    """SIGKILL every process of the session we started (the driver and its Ray), wait for them."""
    deadline = time.monotonic() + timeout
    while (pids := _session_pids(sid)) and time.monotonic() < deadline:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.5)
    assert not _session_pids(sid), "processes of the killed sweep survived"


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """A 3-seed sweep, one trial at a time, SIGKILLed once a trial finished, then run again."""
    out = tmp_path_factory.mktemp("sweep") / "s"
    cmd = [sys.executable, "-m", "memagent", *map(str, SWEEP), "--parallel", "1", "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env_vars(),
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None and not list(out.rglob("results.json")):
            time.sleep(0.1)
    finally:
        _kill_session(proc.pid)
        proc.wait()
    finished = {p.parent: (p.read_bytes(), p.stat().st_mtime_ns) for p in out.rglob("results.json")}
    res = memagent(*SWEEP, "--out", out, timeout=600)
    return out, finished, res


def test_killed_sweep_resumes_without_rerunning_finished_trials(sweep):
    out, finished, res = sweep
    assert res.returncode == 0, res.stderr
    assert 1 <= len(finished) < 3, "the kill should land between the first and the last trial"
    assert f"({len(finished)} done before, {3 - len(finished)} to run)" in res.stdout
    assert res.stdout.count(" started ") == 3 - len(finished)
    assert "[3/3 done, 0 running, 0 failed]" in res.stdout
    for run_dir, (content, mtime) in finished.items():  # untouched by the second run
        assert (run_dir / "results.json").read_bytes() == content
        assert (run_dir / "results.json").stat().st_mtime_ns == mtime
    trials = json.loads((out / "sweep.json").read_text())["trials"]
    assert [t["seed"] for t in trials] == [0, 1, 2]
    for t in trials:  # no trial lost: every one complete, curve included
        r = json.loads((out / t["trial_id"] / "results.json").read_text())
        assert r["status"] == "completed" and r["steps"] == 1024 and r["final"]["episodes"] == 8
        assert [p["step"] for p in r["curve"]] == [0, 512, 1024]
        assert r["steps_per_second"] > 0 and r["trial"] == t["trial_id"]
        assert json.loads((out / t["trial_id"] / "config.json").read_text())["threads"] == 1


def test_a_trial_reproduces_memagent_train(sweep, tmp_path):
    from memagent.cli import main

    out, _, _ = sweep
    trial = out / "memagent-TMaze-v0" / "base" / "seed_1"
    assert main(["train", "--config", str(trial / "config.json"), "--run-dir", str(tmp_path / "again"),
                 "--no-progress"]) == 0
    assert (tmp_path / "again" / "evaluations.csv").read_text() == (trial / "evaluations.csv").read_text()


def test_report_table_json_and_curves(sweep, tmp_path, capsys):
    import numpy as np
    from PIL import Image

    from memagent.cli import main

    out, _, _ = sweep
    assert main(["report", str(out), "--out", str(tmp_path), "--threshold", "0.5"]) == 0
    text = capsys.readouterr().out
    assert "| base | memagent/TMaze-v0 | 3 | 1,024 |" in text and "IQM success" in text
    data = json.loads((tmp_path / "report.json").read_text())
    cell = data["cells"][0]
    lo, hi = cell["success_ci"]
    assert cell["seeds"] == 3 and lo <= cell["success_iqm"] <= hi and 0 <= cell["solved"] <= 3
    finals = sorted(json.loads(p.read_text())["final"]["success_rate"] for p in out.rglob("results.json"))
    assert cell["solved"] == sum(f >= 0.5 for f in finals)
    assert data["curves"][0]["steps"] == [0, 512, 1024]
    with Image.open(tmp_path / "curves.png") as img:
        assert img.size[0] > 300 and np.asarray(img.convert("L")).std() > 5


def test_sweep_joins_a_local_ray_cluster(tmp_path):
    """`ray start --head` on the loopback, a sweep through --address, then the cluster stops."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths must fit
    env = {**env_vars(), "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "token",
           "RAY_AUTH_TOKEN": "memagent-test-" + os.urandom(8).hex()}
    code = "import sys; from ray.scripts.scripts import main; sys.argv[0] = 'ray'; main()"
    head = subprocess.Popen([sys.executable, "-c", code, "start", "--head", "--node-ip-address=127.0.0.1",
                             f"--port={port}", "--num-cpus=2", "--include-dashboard=false",
                             "--disable-usage-stats", f"--temp-dir={temp}", "--block"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    try:
        from memagent.sweep import check_address

        deadline = time.monotonic() + 120
        while True:
            try:
                check_address(f"127.0.0.1:{port}", timeout=1)
                break
            except ValueError:
                assert time.monotonic() < deadline and head.poll() is None, "ray start --head did not come up"
                time.sleep(0.5)
        out = tmp_path / "s"
        res = subprocess.run([sys.executable, "-m", "memagent", "sweep", "--agent", "ppo", "--steps", "256",
                              "--n-envs", "2", "--seeds", "0-1", "--eval-episodes", "4", "--out", str(out),
                              "--address", f"127.0.0.1:{port}"], capture_output=True, text=True, env=env, timeout=300)
        assert res.returncode == 0, res.stdout + res.stderr
        assert f"on the Ray cluster at 127.0.0.1:{port} (2 CPUs)" in res.stdout
        assert len(list(out.rglob("results.json"))) == 2
    finally:
        _kill_session(head.pid)
        head.wait()
    with pytest.raises(ValueError, match="no Ray cluster answers there"):
        check_address(f"127.0.0.1:{port}", timeout=1)


def test_sweep_bad_input_is_one_line(tmp_path):
    line = one_line_error(memagent("sweep", "--grid", "agent_kwargs.learnin_rate=1e-3,3e-4",
                                   "--agent", "ppo", "--out", tmp_path / "a"), "sweep")
    assert "unknown 'learnin_rate'" in line and "PPO takes" in line
    line = one_line_error(memagent("sweep", "--grid", "nosuch=1,2", "--out", tmp_path / "b"), "sweep")
    assert "unknown config key 'nosuch'" in line
    line = one_line_error(memagent("sweep", "--grid", "memory=gru,transformer", "--out", tmp_path / "c"), "sweep")
    assert "unknown memory core 'transformer'" in line
    line = one_line_error(memagent("sweep", "--agent", "ppo", "--address", "127.0.0.1:1",
                                   "--out", tmp_path / "d"), "sweep")
    assert "no Ray cluster answers there" in line and "ray start --head" in line
    line = one_line_error(memagent("sweep", "--seeds", "0-x"), "sweep")
    assert "--seeds takes a range" in line
    assert not any(Path(tmp_path).iterdir())  # nothing was started


def test_stratified_bootstrap_keeps_each_stratum():
    """Stratified: each env's seeds are resampled within the env, so two envs at 0 and 1 give
    an IQM of exactly 0.5 in every resample; pooled resampling would not."""
    from memagent.report import iqm, iqm_ci

    assert iqm([0, 0, 1, 1]) == 0.5 and iqm([0, 1, 1, 1, 1, 1, 1, 10]) == 1.0
    assert iqm_ci([[0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]]) == (0.5, 0.5, 0.5)
    m, lo, hi = iqm_ci([[0.0, 1.0, 0.5, 0.25, 0.75, 1.0, 0.0, 0.5]])
    assert lo < m < hi


def _row(seed, final, curve=(), env="memagent/TMaze-v0", ret=None):
    succ = None if final is None else final
    return {"env_id": env, "seed": seed, "params": {"memory": "gru"}, "steps": 1000,
            "steps_per_second": 100.0,
            "final": {"success_rate": succ, "mean_return": final if ret is None else ret},
            "curve": [{"step": 100 * i, "success_rate": v, "mean_return": v if ret is None else ret}
                      for i, v in enumerate(curve)]}


def test_report_counts_seeds_that_fell_back_and_return_thresholds():
    """A seed that reached 0.95 and ended 0.5 fell back; one that ended within 0.05 of its best
    did not; one that never reached 0.95 did not. Without a success signal, --return-threshold
    decides what is solved."""
    from memagent.report import markdown, summarise

    rows = [_row(0, 0.5, [0.5, 1.0, 0.6]), _row(1, 0.96, [0.5, 1.0]), _row(2, 0.6, [0.5, 0.9])]
    cell = summarise(rows)["cells"][0]
    assert cell["solved"] == 1 and cell["fell_back"] == 1
    assert "| 1/3 | 1/3 |" in markdown(summarise(rows))
    carts = [_row(s, None, env="memagent/CartPoleNoVel-v1", ret=r) for s, r in enumerate([500.0, 460.0, 120.0])]
    assert summarise(carts)["cells"][0]["solved"] is None
    cell = summarise(carts, return_threshold=450)["cells"][0]
    assert cell["solved"] == 2 and cell["fell_back"] is None
    assert "return >= 450 without success" in markdown(summarise(carts, return_threshold=450))


def test_report_aggregates_only_envs_with_success():
    """The over-envs row pools success rates of the envs that have one; CartPole's returns stay
    out of it (they would count its seeds unsolved and drag the return IQM to ~250)."""
    from memagent.report import markdown, summarise

    rows = ([_row(s, 1.0, env="memagent/TMaze-v0") for s in range(3)]
            + [_row(s, 0.0 if s else 1.0, env="memagent/KeyDoor-v0") for s in range(3)]
            + [_row(s, None, env="memagent/CartPoleNoVel-v1", ret=500.0) for s in range(3)])
    out = summarise(rows, return_threshold=450)
    [agg] = out["configs"]
    assert agg["env"] == "all 2 envs with success" and agg["seeds"] == 6
    assert agg["solved"] == 4 and agg["return_iqm"] <= 1.0
    assert "| all 2 envs with success | 6 |" in markdown(out)
    # one env with success: no over-envs row
    assert summarise(rows[:3] + rows[6:])["configs"] == []
