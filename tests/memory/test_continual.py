"""Sequential learning in the DAM: techniques, trainer, permuted-digits tasks."""

import pytest
import torch

from memagent.memory.continual import (
    EWC,
    MAS,
    SI,
    TECHNIQUES,
    Pseudorehearsal,
    Rehearsal,
    SequentialTrainer,
    make_technique,
    permuted_digits_tasks,
)
from memagent.memory.hopfield import DenseAssociativeMemory


def _dam(seed=0):
    return DenseAssociativeMemory(74, 40, n=3, n_labels=10, seed=seed)


def test_permuted_tasks_share_labels_and_permute_pixels():
    tasks = permuted_digits_tasks(3, seed=0, limit=100)
    assert len(tasks) == 3
    assert tasks[0].x_train.shape == (80, 64) and tasks[0].x_test.shape == (20, 64)
    assert tasks[0].x_train.min() >= -1 and tasks[0].x_train.max() <= 1
    for t in tasks[1:]:
        assert torch.equal(t.y_train, tasks[0].y_train)
        assert not torch.equal(t.x_train, tasks[0].x_train)
        # Same pixels, other order.
        assert torch.equal(t.x_train.sort(1).values, tasks[0].x_train.sort(1).values)


def test_naive_forgets_and_rehearsal_recovers():
    tasks = permuted_digits_tasks(2, seed=2, limit=600)
    naive = SequentialTrainer(_dam(2), make_technique("naive"), epochs=10, seed=2).fit(tasks)
    rehearsal = SequentialTrainer(_dam(2), Rehearsal(per_task=100), epochs=10, seed=2).fit(tasks)
    assert naive[0, 0] > 0.85  # task 1 learnt ...
    assert naive[1, 0] < naive[0, 0] - 0.25  # ... then forgotten while learning task 2
    assert rehearsal[1, 0] > naive[1, 0] + 0.2  # rehearsal keeps it
    assert rehearsal[1, 1] > 0.75  # and still learns task 2


@pytest.mark.parametrize("name", list(TECHNIQUES))
def test_every_technique_runs_through_the_interface(name):
    tasks = permuted_digits_tasks(2, seed=0, limit=120)
    tech = make_technique(name)
    acc = SequentialTrainer(_dam(), tech, epochs=1, batch_size=25).fit(tasks)
    assert acc.shape == (2, 2) and ((acc >= 0) & (acc <= 1)).all()
    model = _dam()
    if isinstance(tech, (EWC, SI, MAS)):
        pen = tech.penalty(model)  # anchored at the trained model, so a fresh one is penalised
        assert float(pen.detach()) > 0
        pen.backward()
        assert model.memories.grad.abs().sum() > 0
    if isinstance(tech, Pseudorehearsal):  # pseudo-items are bipolar probes, not real images
        x, y = tech.replay_batch(model, 10, torch.Generator().manual_seed(0))
        assert set(x.unique().tolist()) <= {-1.0, 1.0}
        torch.testing.assert_close(y.sum(-1), torch.ones(10))


def test_bad_input_errors():
    with pytest.raises(ValueError, match="unknown technique 'replay'.*rehearsal"):
        make_technique("replay")
    with pytest.raises(ValueError, match="lam"):
        EWC(lam=-1.0)
    with pytest.raises(ValueError, match="n_tasks"):
        permuted_digits_tasks(0)
    with pytest.raises(ValueError, match="epochs"):
        SequentialTrainer(_dam(), epochs=0)
