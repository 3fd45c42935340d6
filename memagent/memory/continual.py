"""Sequential learning in the Dense Associative Memory (McAlister, Robins & Szymanski 2024,
"Sequential Learning in the Dense Associative Memory", arXiv 2409.15729).

Tasks arrive one after another; training on a new task overwrites the memories that
served the old ones (catastrophic forgetting). Each technique against it is a small class
with one interface, called by :class:`SequentialTrainer`:

- ``before_task(model, task)``, ``after_task(model, task)``: at task boundaries;
- ``after_step(model)``: after every optimiser step (SI's path integral);
- ``penalty(model) -> Tensor``: added to the loss (EWC, SI, MAS);
- ``replay_batch(model, batch_size, generator) -> (x, target) | None``: items mixed into
  every batch (rehearsal, pseudorehearsal); ``target`` is labels or class probabilities.

Techniques: :class:`Naive`; :class:`Rehearsal` (Robins 1995: keep real items of old tasks);
:class:`Pseudorehearsal` (Robins 1995: random probes relaxed by the network, labelled with its
own recall, stand in for old items); :class:`EWC` (Kirkpatrick et al. 2017, penalty
``lam/2 sum_i F_i (theta_i - theta*_i)^2`` with the diagonal Fisher); :class:`SI` (Zenke et al.
2017, importance from the path integral of ``-g . dtheta``); :class:`MAS` (Aljundi et al. 2018,
importance ``E |d |f(x)|^2 / d theta|``).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn


class Task(NamedTuple):
    """One task: train and test images ``(N, P)`` in [-1, 1] and labels ``(N,)``."""

    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor


def permuted_digits_tasks(n_tasks: int = 5, seed: int = 0, test_fraction: float = 0.2,
                          limit: int | None = None) -> list[Task]:
    """scikit-learn digits, one fixed pixel permutation per task (task 0: the identity).

    Pixels are mapped to [-1, 1] (the DAM's bipolar range); the train/test split is shared.

    :param limit: keep only this many images (small tests).
    """
    from memagent.data import load_digits

    if n_tasks < 1:
        raise ValueError(f"n_tasks must be >= 1, got {n_tasks}")
    images, labels = load_digits()
    x = torch.tensor(images.reshape(len(images), -1)) * 2 - 1  # (N, 8, 8) -> (N, 64)
    y = torch.tensor(labels)
    rng = np.random.default_rng(seed)
    order = torch.tensor(rng.permutation(len(x))[:limit])
    x, y = x[order], y[order]
    n_test = max(1, int(len(x) * test_fraction))
    tasks = []
    for t in range(n_tasks):
        perm = torch.arange(x.shape[1]) if t == 0 else torch.tensor(rng.permutation(x.shape[1]))
        xp = x[:, perm]
        tasks.append(Task(xp[n_test:], y[n_test:], xp[:n_test], y[:n_test]))
    return tasks


def _logits(model: nn.Module, x: Tensor) -> Tensor:
    return model.label_logits(x) if hasattr(model, "label_logits") else model(x)


def _params(model: nn.Module) -> dict[str, Tensor]:
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


class Technique:
    """Naive sequential training; the base class of every technique (all hooks do nothing)."""

    name = "naive"

    def before_task(self, model: nn.Module, task: Task) -> None: ...

    def after_step(self, model: nn.Module) -> None: ...

    def after_task(self, model: nn.Module, task: Task) -> None: ...

    def penalty(self, model: nn.Module) -> Tensor | float:
        return 0.0

    def replay_batch(self, model: nn.Module, batch_size: int, generator: torch.Generator):
        return None


Naive = Technique


class Rehearsal(Technique):
    """Keep ``per_task`` real items of each finished task; replay a batch of them each step.

    :param per_task: items kept per task.
    """

    name = "rehearsal"

    def __init__(self, per_task: int = 100, seed: int = 0):
        self.per_task, self.seed = per_task, seed
        self.x: list[Tensor] = []
        self.y: list[Tensor] = []

    def _keep(self, x: Tensor, y: Tensor) -> None:
        g = torch.Generator().manual_seed(self.seed + len(self.x))
        idx = torch.randperm(len(x), generator=g)[: self.per_task]
        self.x.append(x[idx])
        self.y.append(y[idx])

    def after_task(self, model: nn.Module, task: Task) -> None:
        self._keep(task.x_train, task.y_train)

    def replay_batch(self, model: nn.Module, batch_size: int, generator: torch.Generator):
        if not self.x:
            return None
        x, y = torch.cat(self.x), torch.cat(self.y)
        idx = torch.randint(len(x), (min(batch_size, len(x)),), generator=generator)
        return x[idx], y[idx]


class Pseudorehearsal(Rehearsal):
    """Replay pseudo-items: random bipolar probes relaxed by the DAM's own dynamics (pixels
    free, labels at -1), labelled with the class probabilities the network recalls for them.
    No real item of an old task is kept.

    :param per_task: pseudo-items made at the end of each task.
    :param sweeps: relaxation sweeps per probe (0: the raw random probe).
    """

    name = "pseudorehearsal"

    def __init__(self, per_task: int = 100, sweeps: int = 1, seed: int = 0):
        super().__init__(per_task, seed)
        self.sweeps = sweeps

    @torch.no_grad()
    def after_task(self, model: nn.Module, task: Task) -> None:
        g = torch.Generator().manual_seed(self.seed + 1000 + len(self.x))
        pixels = torch.randint(0, 2, (self.per_task, task.x_train.shape[1]), generator=g) * 2.0 - 1
        if self.sweeps and hasattr(model, "relax"):
            labels = -torch.ones(self.per_task, model.n_labels)
            state = model.relax(torch.cat([pixels, labels], 1), sweeps=self.sweeps, generator=g)
            pixels = state[:, : pixels.shape[1]]
        self.x.append(pixels)
        self.y.append(torch.softmax(_logits(model, pixels), -1))


class _Regulariser(Technique):
    """Quadratic anchor ``lam * sum_i Omega_i (theta_i - theta*_i)^2`` with importances
    ``Omega`` summed over finished tasks (subclasses say how importance is measured)."""

    def __init__(self, lam: float):
        if lam < 0:
            raise ValueError(f"lam (penalty strength) must be >= 0, got {lam}")
        self.lam = lam
        self.omega: dict[str, Tensor] = {}
        self.anchor: dict[str, Tensor] = {}

    def importance(self, model: nn.Module, task: Task) -> dict[str, Tensor]:
        raise NotImplementedError

    def after_task(self, model: nn.Module, task: Task) -> None:
        for n, imp in self.importance(model, task).items():
            self.omega[n] = self.omega.get(n, 0) + imp
        self.anchor = {n: p.detach().clone() for n, p in _params(model).items()}

    def penalty(self, model: nn.Module) -> Tensor | float:
        if not self.anchor:
            return 0.0
        return self.lam * sum((self.omega[n] * (p - self.anchor[n]) ** 2).sum()
                              for n, p in _params(model).items())


class EWC(_Regulariser):
    """Elastic weight consolidation: ``Omega`` = the diagonal empirical Fisher, averaged over
    ``n_samples`` items of the task, and the penalty ``lam/2 sum F (theta - theta*)^2``."""

    name = "ewc"

    def __init__(self, lam: float = 30.0, n_samples: int = 200):
        super().__init__(lam / 2)
        self.n_samples = n_samples

    def importance(self, model: nn.Module, task: Task) -> dict[str, Tensor]:
        params = _params(model)
        fisher = {n: torch.zeros_like(p) for n, p in params.items()}
        x, y = task.x_train[: self.n_samples], task.y_train[: self.n_samples]
        for i in range(len(x)):  # per-item gradients: the Fisher is a mean of squares
            loss = F.cross_entropy(_logits(model, x[i:i + 1]), y[i:i + 1])
            grads = torch.autograd.grad(loss, list(params.values()))
            for (n, _), g in zip(params.items(), grads, strict=True):
                fisher[n] += g.detach() ** 2 / len(x)
        return fisher


class MAS(_Regulariser):
    """Memory-aware synapses: ``Omega = E_x |d |logits(x)|^2 / d theta|`` (unlabelled)."""

    name = "mas"

    def __init__(self, lam: float = 0.001, n_samples: int = 200):
        super().__init__(lam)
        self.n_samples = n_samples

    def importance(self, model: nn.Module, task: Task) -> dict[str, Tensor]:
        params = _params(model)
        imp = {n: torch.zeros_like(p) for n, p in params.items()}
        x = task.x_train[: self.n_samples]
        for i in range(len(x)):
            out = _logits(model, x[i:i + 1]).square().sum()
            for (n, _), g in zip(params.items(), torch.autograd.grad(out, list(params.values())), strict=True):
                imp[n] += g.detach().abs() / len(x)
        return imp


class SI(_Regulariser):
    """Synaptic intelligence: ``omega_i += -g_i dtheta_i`` along training (``g``: the gradient
    the optimiser used), then ``Omega_i += omega_i / (Delta theta_i^2 + xi)`` at the task end.

    :param c: the penalty strength (the paper's ``c``).
    :param xi: damping of the path-length denominator.
    """

    name = "si"

    def __init__(self, c: float = 0.3, xi: float = 0.1):
        super().__init__(c)
        self.xi = xi
        self._w: dict[str, Tensor] = {}
        self._start: dict[str, Tensor] = {}
        self._prev: dict[str, Tensor] = {}

    def before_task(self, model: nn.Module, task: Task) -> None:
        params = _params(model)
        self._start = {n: p.detach().clone() for n, p in params.items()}
        self._prev = {n: p.detach().clone() for n, p in params.items()}
        self._w = {n: torch.zeros_like(p) for n, p in params.items()}

    def after_step(self, model: nn.Module) -> None:
        for n, p in _params(model).items():
            if p.grad is not None:
                self._w[n] -= p.grad.detach() * (p.detach() - self._prev[n])
            self._prev[n] = p.detach().clone()

    def importance(self, model: nn.Module, task: Task) -> dict[str, Tensor]:
        return {n: (self._w[n] / ((p.detach() - self._start[n]) ** 2 + self.xi)).clamp_min(0)
                for n, p in _params(model).items()}


TECHNIQUES: dict[str, type[Technique]] = {
    "naive": Naive, "rehearsal": Rehearsal, "pseudorehearsal": Pseudorehearsal,
    "ewc": EWC, "si": SI, "mas": MAS,
}


def make_technique(name: str, **kwargs) -> Technique:
    """A technique by name (one of :data:`TECHNIQUES`), with its own keyword arguments."""
    if name not in TECHNIQUES:
        raise ValueError(f"unknown technique {name!r}; known: {', '.join(TECHNIQUES)}")
    return TECHNIQUES[name](**kwargs)


class SequentialTrainer:
    """Train a model (a :class:`~memagent.memory.dam.DenseAssociativeMemory` classifier or any
    module mapping images to logits) on tasks one after another with one technique.

    :param model: the model; its ``clip_()`` runs after every step when it has one.
    :param technique: a :class:`Technique`.
    :param lr: Adam's learning rate.
    :param epochs: passes over each task's training set.
    :param batch_size: items of the current task per step (replayed items come on top).
    :param seed: seed of the batch order and the replay draws.
    """

    def __init__(self, model: nn.Module, technique: Technique | None = None, lr: float = 0.01,
                 epochs: int = 5, batch_size: int = 50, seed: int = 0):
        if epochs < 1 or batch_size < 1 or not lr > 0:
            raise ValueError(f"need epochs >= 1, batch_size >= 1, lr > 0; got {epochs}, "
                             f"{batch_size}, {lr}")
        self.model, self.technique = model, technique or Naive()
        self.lr, self.epochs, self.batch_size = lr, epochs, batch_size
        self.generator = torch.Generator().manual_seed(seed)

    @torch.no_grad()
    def accuracy(self, task: Task) -> float:
        """Recall accuracy on the task's test set."""
        return float((_logits(self.model, task.x_test).argmax(-1) == task.y_test).float().mean())

    def train_task(self, task: Task) -> None:
        model, tech = self.model, self.technique
        opt = torch.optim.Adam(model.parameters(), lr=self.lr)  # fresh per task
        tech.before_task(model, task)
        n = len(task.x_train)
        for _ in range(self.epochs):
            order = torch.randperm(n, generator=self.generator)
            for start in range(0, n, self.batch_size):
                idx = order[start:start + self.batch_size]
                loss = F.cross_entropy(_logits(model, task.x_train[idx]), task.y_train[idx])
                replay = tech.replay_batch(model, len(idx), self.generator)
                if replay is not None:
                    loss = loss + F.cross_entropy(_logits(model, replay[0]), replay[1])
                loss = loss + tech.penalty(model)
                opt.zero_grad()
                loss.backward()
                opt.step()
                if hasattr(model, "clip_"):
                    model.clip_()
                tech.after_step(model)
        tech.after_task(model, task)

    def fit(self, tasks: list[Task]) -> np.ndarray:
        """Train on ``tasks`` in order; ``acc[i, j]`` = accuracy on task ``j`` after task ``i``."""
        acc = np.zeros((len(tasks), len(tasks)))
        for i, task in enumerate(tasks):
            self.train_task(task)
            acc[i] = [self.accuracy(t) for t in tasks]
        return acc
