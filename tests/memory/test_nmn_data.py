"""The NMN paper's generated data sets and a smoke run of ``memagent bench nmn``."""

import json

import numpy as np
import pytest

from memagent.cli import main
from memagent.memory.nmn_data import TASKS, make_task


@pytest.mark.parametrize("name", TASKS)
def test_shapes_and_reproducible(name):
    task = make_task(name, seed=3)
    a = task.sample(4, np.random.default_rng(0))
    b = make_task(name, seed=3).sample(4, np.random.default_rng(0))
    T = a.inputs.shape[0]
    assert a.inputs.shape == (T, 4, task.n_inputs) and a.inputs.dtype == np.float32
    assert a.targets.shape == a.groups.shape == (T, 4, task.n_heads)
    assert ((a.targets >= 0) == (a.groups >= 0)).all()
    assert a.targets.max() < task.n_classes
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)


def test_sorted_classes_follow_one_fixed_cycle():
    task = make_task("sorted", seed=0)
    y = task.sample(6, np.random.default_rng(1)).targets[..., 0]  # (T, N)
    successor = {}
    for col in y.T:
        for prev, nxt in zip(col[:-1], col[1:], strict=True):
            assert successor.setdefault(prev, nxt) == nxt
    assert sorted(successor) == list(range(10))


def test_recall_heads_are_the_previous_classes():
    y = make_task("recall").sample(5, np.random.default_rng(2)).targets
    np.testing.assert_array_equal(y[1:, :, 1], y[:-1, :, 0])
    np.testing.assert_array_equal(y[2:, :, 2], y[:-2, :, 0])
    assert (y[0, :, 1:] == -1).all() and (y[1, :, 2] == -1).all()


def test_memory_recall_outputs_the_stored_numbers():
    b = make_task("memory", length=3).sample(8, np.random.default_rng(3))
    np.testing.assert_array_equal(b.targets[3:], b.inputs[:3].astype(np.int64))
    assert (b.inputs[3:] == 0).all() and (b.targets[:3] == -1).all()
    assert (b.inputs[:3].sum(-1) > 0).all()  # no stored number looks like the read signal


def test_extended_recall_query_asks_for_the_key_25_steps_back():
    b = make_task("extended").sample(16, np.random.default_rng(4))
    assert b.inputs.shape[0] == 26
    key = b.inputs[0, :, 3:6].argmax(-1)
    np.testing.assert_array_equal(b.targets[25, :, 0], key)
    assert (b.groups[25] == 1).all() and (b.groups[:25] == 0).all()
    np.testing.assert_array_equal(b.targets[1:25, :, 0], b.inputs[1:25, :, :3].argmax(-1))


def test_unknown_task():
    with pytest.raises(ValueError, match="task must be one of"):
        make_task("copy")


def test_bench_smoke(tmp_path, capsys):
    out = tmp_path / "nmn.json"
    code = main(["bench", "nmn", "--quick", "--steps", "3", "--tasks", "extended",
                 "--models", "FFNN", "NMN-addressed", "--json", str(out)])
    assert code == 0
    table = capsys.readouterr().out
    assert "long-term" in table and "NMN-addressed" in table
    payload = json.loads(out.read_text())
    assert payload["bench"] == "nmn" and len(payload["rows"]) == 4
    assert main(["bench", "nmn", "--quick", "--tasks", "nope"]) == 2
    assert main(["bench", "nmn", "--seeds", "0"]) == 2
    assert "--seeds must be >= 1" in capsys.readouterr().err


def test_nmn_learns_memory_recall_where_the_ffnn_cannot():
    from memagent.bench.nmn import NMNBenchConfig, train_and_test

    task = make_task("memory", length=1)
    cfg = NMNBenchConfig(hidden=16, steps=150, batch=32, test=200)
    assert train_and_test(task, "NMN", cfg, seed=0)["errors"]["bit error"] < 5.0
    assert train_and_test(task, "FFNN", cfg, seed=0)["errors"]["bit error"] > 35.0
