"""``memagent bench sequential``: sequential learning in the Dense Associative Memory
(McAlister, Robins & Szymanski 2024) on permuted digits.

A DAM classifier in Krotov & Hopfield's style (visible units = 64 pixels in [-1, 1] and 10
label units; recall = one update of the label units from the pixels, labels at -1) learns
``--tasks`` permuted-digits tasks one after another (task 1: the original pixel order; each
later task a fixed random permutation). Reported: mean recall accuracy over all tasks after
the last task, per technique (naive is the peer every technique is compared against) and
interaction order ``n``.
"""

from __future__ import annotations

import time


def _orders(text: str) -> list[int]:
    try:
        orders = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"--orders takes integers separated by commas, got {text!r}") from None
    if not orders or min(orders) < 1:
        raise ValueError(f"--orders must list interaction orders >= 1, got {text!r}")
    return orders


def _handler(args) -> int:
    import numpy as np
    import torch

    from memagent.bench.common import report
    from memagent.memory.continual import (
        TECHNIQUES,
        SequentialTrainer,
        make_technique,
        permuted_digits_tasks,
    )
    from memagent.memory.hopfield import DenseAssociativeMemory
    from memagent.utils import set_seed

    orders = _orders(args.orders)
    names = [t.strip() for t in args.techniques.split(",") if t.strip()]
    for t in names:
        if t not in TECHNIQUES:
            raise ValueError(f"unknown technique {t!r} in --techniques; known: {', '.join(TECHNIQUES)}")
    n_tasks, epochs, limit = args.tasks, args.epochs, None
    if args.quick:
        n_tasks, epochs, limit = min(n_tasks, 2), 2, 400
    if n_tasks < 1 or epochs < 1 or args.memories < 1:
        raise ValueError("--tasks, --epochs and --memories must be >= 1")
    tasks = permuted_digits_tasks(n_tasks, seed=args.seed, limit=limit)
    dim = tasks[0].x_train.shape[1] + 10
    start = time.perf_counter()
    results = {}
    for n in orders:
        for name in names:
            set_seed(args.seed)
            model = DenseAssociativeMemory(dim, args.memories, n=n, n_labels=10, seed=args.seed)
            trainer = SequentialTrainer(model, make_technique(name), lr=args.lr, epochs=epochs,
                                        seed=args.seed)
            acc = trainer.fit(tasks)  # acc[i, j]: task j after training task i
            results[(name, n)] = acc
            if args.verbose:
                print(f"n={n} {name}: after last task {np.round(acc[-1], 2).tolist()}", flush=True)
    elapsed = time.perf_counter() - start
    print(f"DAM classifier, {args.memories} memories, {n_tasks} permuted-digits tasks, "
          f"{epochs} epochs/task, seed {args.seed}, {elapsed:.0f} s, torch threads "
          f"{torch.get_num_threads()}")
    headers = ["technique"] + [f"n={n}" for n in orders]
    print("\nmean recall accuracy over all tasks after the last task")
    rows = [[t] + [float(results[(t, n)][-1].mean()) for n in orders] for t in names]
    report("sequential", headers, rows)
    print("\naccuracy on task 1 after the last task (forgetting of the first task)")
    first = [[t] + [float(results[(t, n)][-1, 0]) for n in orders] for t in names]
    report("sequential", headers, first)
    print("\naccuracy on each task right after learning it (mean of the diagonal: plasticity)")
    diag = [[t] + [float(np.diag(results[(t, n)]).mean()) for n in orders] for t in names]
    report("sequential", headers, diag, args.json, extra={
        "mean_after_last": rows, "first_after_last": first, "diagonal": diag,
        "matrices": {f"{t}/n={n}": a.tolist() for (t, n), a in results.items()},
        "tasks": n_tasks, "epochs": epochs, "memories": args.memories, "seconds": elapsed})
    return 0


def register(subparsers) -> None:
    from memagent.bench.common import add_common_args

    p = subparsers.add_parser(
        "sequential", help="DAM sequential learning on permuted digits, per technique and n",
        description=__doc__.split("\n\n")[1].replace("\n", " "))
    add_common_args(p)
    p.add_argument("--orders", default="2,3,5,10", help="interaction orders n (2,3,5,10)")
    p.add_argument("--techniques", default="naive,rehearsal,pseudorehearsal,ewc,si,mas",
                   help="techniques to compare (all six)")
    p.add_argument("--tasks", type=int, default=5, help="permuted-digits tasks (5)")
    p.add_argument("--epochs", type=int, default=5, help="epochs per task (5)")
    p.add_argument("--memories", type=int, default=100, help="DAM memories K (100)")
    p.add_argument("--lr", type=float, default=0.01, help="Adam learning rate (0.01)")
    p.add_argument("--verbose", action="store_true", help="print every run's accuracies")
    p.add_argument("--quick", action="store_true", help="2 tasks, 400 images, 2 epochs (tests)")
    p.set_defaults(func=_handler)
