"""``memagent bench nmn``: the four experiments of Neural Memory Networks (Biggs & Nuttall, IV).

Trains, on each generated data set of :mod:`memagent.memory.nmn_data`, a feed-forward network
(the NMN with its memory off), the NMN with eq. 11's orthogonal memory, the NMN with eq. 12's
addressed memory, an Elman RNN (the paper's ``layrecnet`` peer) and a GRU, all with the same
budget: the same hidden width, optimiser, learning rate, batch size and number of updates
(fresh sequences every update). Prints the test classification error (mean and std over seeds,
in percent) next to the paper's figures.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

MODELS = ("FFNN", "NMN", "NMN-addressed", "RNN", "GRU")


@dataclass
class NMNBenchConfig:
    """What every model gets on every task."""

    hidden: int = 32
    """standard neurons in each hidden layer (and the RNN/GRU hidden size)."""
    steps: int = 400
    """Adam updates (each on a fresh batch of sequences)."""
    batch: int = 32
    """sequences per update."""
    lr: float = 1e-2
    """Adam learning rate."""
    test: int = 500
    """test sequences."""


# Per task: the NMN's write function (first layer; later layers write their neighbours),
# decay on firing, neighbours and hidden layers (the paper used two for extended recall); the
# FFNN has the same layers with the memory switched off. The addressed variant learns when
# to fire (its rounding passes gradients), so it gets its own decay, ``gamma_addressed``.
TASK_SETTINGS = {
    "sorted": dict(write="neighbours", gamma=0.5, gamma_addressed=0.5, tau=2, layers=2),
    "recall": dict(write="neighbours", gamma=0.5, gamma_addressed=0.5, tau=2, layers=2),
    "memory": dict(write="external", gamma=0.5, gamma_addressed=0.5, tau=2, layers=2),
    "extended": dict(write="neighbours", gamma=0.9, gamma_addressed=0.5, tau=2, layers=2),
}


def build_model(kind: str, n_inputs: int, n_outputs: int, hidden: int, settings: dict):
    """A model mapping ``(T, N, F)`` to logits ``(T, N, n_outputs)``; memory empty at t=0."""
    import torch
    from torch import nn

    from memagent.memory.nmn import NMNLayer

    class Recurrent(nn.Module):
        def __init__(self, cell):
            super().__init__()
            self.cell = cell(n_inputs, hidden)
            self.head = nn.Linear(hidden, n_outputs)

        def forward(self, x):
            return self.head(self.cell(x)[0])  # (T, N, H) -> (T, N, O)

    class FeedForward(nn.Module):
        def __init__(self, memory: str | None):
            super().__init__()
            self.layers = nn.ModuleList()
            size = n_inputs
            for i in range(settings["layers"]):
                if memory is None:
                    self.layers.append(nn.Sequential(nn.Linear(size, hidden), nn.Sigmoid()))
                    size = hidden
                else:
                    addressed = memory == "addressed"
                    write = settings["write"] if not addressed and i == 0 else "neighbours"
                    gamma = settings["gamma_addressed" if addressed else "gamma"]
                    layer = NMNLayer(size, hidden, tau=settings["tau"], gamma=gamma, write=write,
                                     addressed=addressed)
                    self.layers.append(layer)
                    size = layer.output_dim
            self.head = nn.Linear(size, n_outputs)

        def forward(self, x):
            for layer in self.layers:
                x = layer(x)[0] if isinstance(layer, NMNLayer) else layer(x)
            return self.head(x)

    makers = {"FFNN": lambda: FeedForward(None), "NMN": lambda: FeedForward("orthogonal"),
              "NMN-addressed": lambda: FeedForward("addressed"),
              "RNN": lambda: Recurrent(nn.RNN), "GRU": lambda: Recurrent(nn.GRU)}
    del torch
    return makers[kind]()


def train_and_test(task, kind: str, cfg: NMNBenchConfig, seed: int) -> dict:
    """Train one model on one task; return its test error per group (percent) and timing."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    from memagent.utils import set_seed

    set_seed(seed)
    rng = np.random.default_rng(seed + 1000)
    model = build_model(kind, task.n_inputs, task.n_heads * task.n_classes, cfg.hidden,
                        TASK_SETTINGS[task.name])
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)

    def logits_targets(batch):
        x = torch.from_numpy(batch.inputs)
        out = model(x).view(*batch.targets.shape, task.n_classes)  # (T, N, heads, C)
        return out, torch.from_numpy(batch.targets)

    start = time.perf_counter()
    model.train()
    for _ in range(cfg.steps):
        out, y = logits_targets(task.sample(cfg.batch, rng))
        loss = F.cross_entropy(out.reshape(-1, task.n_classes), y.reshape(-1), ignore_index=-1)
        opt.zero_grad()
        loss.backward()
        opt.step()
    seconds = time.perf_counter() - start
    model.eval()
    test = task.sample(cfg.test, np.random.default_rng(10_000 + seed))
    with torch.no_grad():
        out, y = logits_targets(test)
    wrong = (out.argmax(-1) != y).numpy()
    errors = {name: float(100 * wrong[test.groups == g].mean())
              for g, name in enumerate(task.group_names)}
    n_params = sum(p.numel() for p in model.parameters())
    return {"errors": errors, "train_s": seconds, "params": n_params}


def run(args) -> int:
    import numpy as np
    import torch

    from memagent.bench.common import report
    from memagent.memory.nmn_data import TASKS, make_task

    for name in ("seeds", "steps", "batch", "threads"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name} must be >= 1, got {getattr(args, name)}")
    if args.hidden < 3:
        raise ValueError(f"--hidden must be >= 3 (a neuron and its tau = 2 neighbours), "
                         f"got {args.hidden}")
    if args.lr <= 0:
        raise ValueError(f"--lr must be > 0, got {args.lr}")
    torch.set_num_threads(args.threads)
    cfg = NMNBenchConfig(hidden=args.hidden, steps=args.steps, batch=args.batch, lr=args.lr)
    if args.quick:
        cfg.steps, cfg.test = min(cfg.steps, 60), 200
    seeds = [args.seed + i for i in range(1 if args.quick else args.seeds)]
    tasks = args.tasks or list(TASKS)
    models = args.models or list(MODELS)
    for name in tasks + models:
        if name not in TASKS + MODELS:
            raise ValueError(f"unknown task or model {name!r}: tasks are {TASKS}, models {MODELS}")
    headers = ["task", "error", "model", "ours %", "std", "paper %", "params", "train s"]
    rows, raw = [], []
    for task_name in tasks:
        for kind in models:
            runs = [train_and_test(make_task(task_name, seed=s), kind, cfg, s) for s in seeds]
            task = make_task(task_name)
            for group in task.group_names:
                errs = np.array([r["errors"][group] for r in runs])
                paper = task.paper.get(kind, {}).get(group, float("nan"))
                std = float(errs.std(ddof=1)) if len(errs) > 1 else float("nan")
                rows.append([task_name, group, kind, float(errs.mean()), std,
                             paper, runs[0]["params"],
                             float(np.mean([r["train_s"] for r in runs]))])
            raw.append({"task": task_name, "model": kind, "seeds": seeds, "runs": runs})
            print(f"  {task_name:9s} {kind:14s} done", flush=True) if args.verbose else None
    report("nmn", headers, rows, args.json,
           extra={"config": vars(cfg), "settings": TASK_SETTINGS, "runs": raw})
    return 0


def register(subparsers) -> None:
    from memagent.bench.common import add_common_args

    p = subparsers.add_parser(
        "nmn", help="Neural Memory Networks: FFNN / NMN / RNN / GRU on the paper's four tasks",
        description="Trains an FFNN, the NMN (eq. 11 and eq. 12 memories), an Elman RNN and a "
        "GRU with equal budgets on the four generated data sets of Biggs & Nuttall and prints "
        "the test classification error (mean, std over seeds) beside the paper's figures.")
    add_common_args(p)
    p.add_argument("--quick", action="store_true", help="one seed, 60 updates: a smoke run")
    p.add_argument("--seeds", type=int, default=3, help="seeds per model and task (default 3)")
    p.add_argument("--tasks", nargs="+", metavar="TASK", help="subset of: sorted recall memory extended")
    p.add_argument("--models", nargs="+", metavar="MODEL", help=f"subset of: {' '.join(MODELS)}")
    p.add_argument("--hidden", type=int, default=NMNBenchConfig.hidden, help="hidden neurons")
    p.add_argument("--steps", type=int, default=NMNBenchConfig.steps, help="Adam updates")
    p.add_argument("--batch", type=int, default=NMNBenchConfig.batch, help="sequences per update")
    p.add_argument("--lr", type=float, default=NMNBenchConfig.lr, help="Adam learning rate")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--verbose", action="store_true", help="print progress")
    p.set_defaults(func=run)
