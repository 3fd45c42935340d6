"""MAN's experiments on data that is here (Kim et al., Memory Association Networks §4.1-4.2).

``memagent bench man``: ``memagent imagine`` on its defaults (Screens-v0, §4.2), run as its own
process per seed and memory type: the judge's figures it writes (imagined screens of visited
states recognised as their own state, variety and fidelity against real screens, Type B's
``recognize`` on held-out real screens), its wall time and its peak resident memory
(``os.wait4``'s ``ru_maxrss``), per run and over the seeds, against the targets.

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

#: the issue's targets: recognised >= 0.95, variety >= 0.8, fidelity <= 1.2, recognize >= 0.95,
#: wall time < 60 s
TARGETS = {"recognised": (">=", 0.95), "variety": (">=", 0.8), "fidelity": ("<=", 1.2),
           "recognize": (">=", 0.95), "seconds": ("<", 60.0)}


def register(subparsers) -> None:
    m = subparsers.add_parser("man", help="memagent imagine on its defaults over seeds: judged, timed, peak memory",
                              description=__doc__.split("\n\n")[1])
    m.add_argument("--env", default="memagent/Screens-v0")
    m.add_argument("--memory", choices=["typeA", "typeB", "both"], default="both")
    m.add_argument("--seeds", default="0,1,2,3,4", help="comma-separated seeds")
    m.add_argument("--out", metavar="DIR", help="keep each run's figure and metrics here")
    m.add_argument("imagine_args", nargs="*", metavar="-- FLAG",
                   help="more flags for every `memagent imagine` (after --)")
    m.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    m.set_defaults(func=run_man)
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


def imagine_process(argv: list[str]) -> dict:
    """``memagent imagine ARGV --metrics FILE`` as a child process: its metrics, ``seconds``
    (wall) and ``peak_mb`` (its maximum resident set, from ``os.wait4``)."""
    import json
    import os
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        metrics = Path(tmp) / "metrics.json"
        start = time.perf_counter()
        child = subprocess.Popen([sys.executable, "-m", "memagent", "imagine", *argv,
                                  "--metrics", str(metrics), "--no-progress"],
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        out = child.stdout.read()
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode != 0 or not metrics.is_file():
            raise RuntimeError(f"memagent imagine {' '.join(argv)} failed ({child.returncode}):\n{out[-2000:]}")
        result = json.loads(metrics.read_text())
    return {**result, "seconds": seconds, "peak_mb": usage.ru_maxrss / 1024, "output": out}


def _meets(key: str, value: float) -> bool:
    op, target = TARGETS[key]
    return value >= target if op == ">=" else value <= target if op == "<=" else value < target


def run_man(args) -> int:
    import os
    import shutil
    import tempfile
    from pathlib import Path

    import numpy as np

    try:
        seeds = [int(s) for s in str(args.seeds).split(",")]
    except ValueError:
        raise ValueError(f"--seeds must be comma-separated integers, e.g. 0,1,2,3,4; got {args.seeds!r}") from None
    kinds = ["typeA", "typeB"] if args.memory == "both" else [args.memory]
    keys = ["recognised", "variety", "fidelity", "recognize", "seconds", "peak_mb"]
    rows, runs = [], []
    load = os.getloadavg()[0]
    for kind in kinds:
        for seed in seeds:
            folder = Path(args.out) if args.out else Path(tempfile.mkdtemp())
            folder.mkdir(parents=True, exist_ok=True)
            fig = folder / f"{kind}_seed{seed}.png"
            r = imagine_process(["--env", args.env, "--memory", kind, "--seed", str(seed),
                                 "--out", str(fig), *args.imagine_args])
            if args.out:  # what the run printed, beside its figure
                (folder / f"{kind}_seed{seed}.txt").write_text(r["output"])
            else:
                shutil.rmtree(folder, ignore_errors=True)
            r.update(kind=kind, load=os.getloadavg()[0])
            runs.append({k: v for k, v in r.items() if k != "output"})
            rows.append([kind, seed, r["visited"], r.get("recognised", float("nan")),
                         r.get("variety", float("nan")), r.get("fidelity", float("nan")),
                         r.get("recognize", float("nan")), r["seconds"], r["peak_mb"], r["load"]])
            print(f"{kind} seed {seed}: " + ", ".join(f"{k} {r.get(k, float('nan')):.3g}" for k in keys),
                  flush=True)
    headers = ["memory", "seed", "states visited", "recognised", "variety", "fidelity",
               "Type B recognize", "imagine s", "peak MB", "load"]
    report("man", headers, rows, None)
    summary = []
    for kind in kinds:
        mine = [r for r in runs if r["kind"] == kind]
        cells = [kind, len(mine)]
        for key in keys:
            vals = np.array([r[key] for r in mine if key in r], dtype=float)
            if len(vals) == 0:
                cells.append("-")
                continue
            met = f", {sum(_meets(key, v) for v in vals)}/{len(vals)} meet" if key in TARGETS else ""
            cells.append(f"{vals.mean():.3g} ({vals.min():.3g}-{vals.max():.3g}{met})")
        summary.append(cells)
    print(f"\nover seeds {args.seeds} (mean, min-max, seeds meeting the target; load average "
          f"{load:.1f} at the start on {os.cpu_count()} cores):")
    report("man-summary", ["memory", "seeds", *keys], summary, args.json, extra={"runs": runs})
    return 0
