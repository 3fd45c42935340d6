"""MAN's experiments on data that is here (Kim et al., Memory Association Networks §4.1).

``memagent bench man-digits``: the MNIST experiment. Items (scikit-learn's 8 x 8 digits, or
MNIST from IDX files with ``--mnist DIR``) are filed in the short-term memory by label; each
long-term memory (Type A, Type B) is trained from its balanced batches and imagines ``n``
items per class; a judge trained on real training items (logistic regression) reports the
share classified as the class asked for, and Type B's ``recognize`` accuracy on held-out items.

``memagent bench man-imbalance``: why the short-term memory has one queue per class. A stream
in which classes 0-4 are 100 times as frequent as classes 5-9 is stored either in a plain
replay memory (one FIFO, uniform sampling, as DQN's) or in the class queues of the same total
size; the same long-term memory trained from each is judged per class, for the rare classes.
"""

from __future__ import annotations

import time

from memagent.bench.common import add_common_args, report


def register(subparsers) -> None:
    p = subparsers.add_parser("man-digits", help="MAN long-term memories on digits/MNIST: judged imagination",
                              description=__doc__.split("\n\n")[1])
    _shared(p, steps=2000)
    p.add_argument("--mnist", metavar="DIR", help="MNIST IDX folder (default: scikit-learn digits)")
    p.set_defaults(func=run_digits)
    q = subparsers.add_parser("man-imbalance", help="long-term memory from plain replay vs class queues, 100:1 stream",
                              description=__doc__.split("\n\n")[2])
    _shared(q, steps=1500)
    q.add_argument("--ratio", type=int, default=100, help="frequent : rare items in the stream")
    q.set_defaults(func=run_imbalance)


def _shared(p, steps: int) -> None:
    p.add_argument("--memory", choices=["typeA", "typeB", "both"], default="both")
    p.add_argument("--steps", type=int, default=steps, help="Adam steps of each long-term memory")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--n-imagined", type=int, default=100, help="imagined items per class")
    add_common_args(p)


def _split(images, labels, seed: int, n_test: float = 0.3):
    import numpy as np

    perm = np.random.default_rng(seed).permutation(len(images))
    cut = int(len(images) * (1 - n_test))
    tr, te = perm[:cut], perm[cut:]
    return images[tr], labels[tr], images[te], labels[te]


def _memory(kind: str, item_shape, seed: int):
    from memagent.memory.generative import make_memory

    hidden = (256, 256) if item_shape[0] > 8 else (128, 128)
    return make_memory(kind, 10, item_shape, seed=seed, device="cpu",
                       net_kwargs={"hidden": hidden})


def digits_experiment(kind: str, steps: int, seed: int = 0, images=None, labels=None,
                      batch_size: int = 64, n_imagined: int = 100, capacity: int = 1000) -> dict:
    """Train a ``kind`` long-term memory from class queues of real items; judge it.

    :return: ``{"judge_real", "imagined", "per_class", "recognize", "seconds"}``.
    """
    import numpy as np

    from memagent.data import load_digits
    from memagent.judge import Judge
    from memagent.memory.replay import ClassQueueMemory
    from memagent.utils import set_seed

    set_seed(seed)
    if images is None:
        images, labels = load_digits()
    xtr, ytr, xte, yte = _split(images, labels, seed)
    judge = Judge(seed=seed).fit(xtr[:10_000], ytr[:10_000])
    stm = ClassQueueMemory(10, capacity, xtr.shape[1:], seed=seed)
    stm.add(ytr, xtr)
    mem = _memory(kind, xtr.shape[1:], seed)
    start = time.perf_counter()
    mem.fit(stm, steps, batch_size=batch_size)
    seconds = time.perf_counter() - start
    per_class = judge.per_class(mem.imagine(np.arange(10), n_imagined), np.arange(10))
    out = {"judge_real": judge.score(xte, yte), "imagined": float(per_class.mean()),
           "per_class": per_class, "recognize": float("nan"), "seconds": seconds}
    if hasattr(mem, "recognize"):
        out["recognize"] = float((mem.recognize(xte) == yte).mean())
    return out


def run_digits(args) -> int:
    import torch as th

    from memagent.data import load_mnist

    th.set_num_threads(1)
    images = labels = None
    data = "sklearn digits 8x8"
    if args.mnist:
        images, labels = load_mnist(args.mnist)
        data = "MNIST 28x28"
    kinds = ["typeA", "typeB"] if args.memory == "both" else [args.memory]
    rows = []
    for kind in kinds:
        r = digits_experiment(kind, args.steps, args.seed, images, labels, args.batch_size,
                              args.n_imagined)
        rows.append([kind, data, args.steps, r["judge_real"], r["imagined"],
                     float(r["per_class"].min()), r["recognize"], r["seconds"]])
    report("man-digits", ["memory", "data", "steps", "judge on real test", "imagined classified as asked",
                          "worst class", "Type B recognize", "train s"], rows, args.json)
    return 0


def imbalance_experiment(kind: str, steps: int, seed: int = 0, ratio: int = 100,
                         batch_size: int = 64, n_imagined: int = 100,
                         n_frequent: int = 2000) -> dict:
    """Long-term memory trained from a plain replay vs class queues of one imbalanced stream.

    Classes 0-4 get ``n_frequent`` items each, classes 5-9 ``n_frequent // ratio`` (distinct
    training images), shuffled. Both memories hold 2,000 items in all.

    :return: ``{source: (10,) judged accuracy per class}`` for ``"plain replay"`` and
        ``"class queues"``, plus ``"held"``: items of each class each memory held.
    """
    import numpy as np

    from memagent.data import load_digits
    from memagent.judge import Judge
    from memagent.memory.replay import ClassQueueMemory, UniformReplayMemory
    from memagent.utils import set_seed

    set_seed(seed)
    rng = np.random.default_rng(seed)
    images, labels = load_digits()
    xtr, ytr, xte, yte = _split(images, labels, seed)
    judge = Judge(seed=seed).fit(xtr, ytr)
    n_rare = max(n_frequent // ratio, 1)
    idx = []
    for c in range(10):
        pool = np.flatnonzero(ytr == c)
        idx.append(rng.choice(pool, n_frequent) if c < 5 else rng.choice(pool, n_rare, replace=False))
    stream = rng.permutation(np.concatenate(idx))
    total = 2000
    sources = {"plain replay": UniformReplayMemory(10, total, xtr.shape[1:], seed=seed),
               "class queues": ClassQueueMemory(10, total // 10, xtr.shape[1:], seed=seed)}
    out, held = {}, {}
    for name, stm in sources.items():
        for chunk in np.array_split(stream, 100):  # the stream arrives in batches
            stm.add(ytr[chunk], xtr[chunk])
        held[name] = stm.class_counts if hasattr(stm, "class_counts") else stm.counts.copy()
        mem = _memory(kind, xtr.shape[1:], seed)
        mem.fit(stm, steps, batch_size=batch_size)
        out[name] = judge.per_class(mem.imagine(np.arange(10), n_imagined), np.arange(10))
    out["held"] = held
    return out


def run_imbalance(args) -> int:
    import torch as th

    th.set_num_threads(1)
    if args.ratio < 1:
        raise ValueError(f"--ratio must be >= 1, got {args.ratio}")
    kinds = ["typeA", "typeB"] if args.memory == "both" else [args.memory]
    rows = []
    for kind in kinds:
        r = imbalance_experiment(kind, args.steps, args.seed, args.ratio, args.batch_size,
                                 args.n_imagined)
        for source in ("plain replay", "class queues"):
            acc, held = r[source], r["held"][source]
            rows.append([kind, source, int(held[5:].sum()), float(acc[5:].mean()),
                         *[float(a) for a in acc[5:]], float(acc[:5].mean())])
    print(f"digits stream, classes 0-4 : classes 5-9 = {args.ratio}:1, 2,000 items held, "
          f"{args.steps} steps; share of imagined items the judge classifies as asked")
    report("man-imbalance", ["memory", "trained from", "rare items held", "rare classes",
                             "class 5", "class 6", "class 7", "class 8", "class 9",
                             "frequent classes"], rows, args.json)
    return 0
