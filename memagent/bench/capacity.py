"""``memagent bench capacity``: the Universal Hopfield capacity experiment (Millidge et al.
2022, section 5), protocol as in the official code.

Pixels in [0, 1]; store ``N`` images; query each with a corrupted copy (Gaussian:
``clamp(|x + N(0, sigma)|, 0, 1)``; halved: bottom half set to 0); a retrieval is correct
when the summed squared error to the stored image is <= the threshold (60 for 784 pixels,
scaled by pixels / 784 otherwise). Fraction correct, mean and std over seeds, for each
similarity with max separation and for each separation with Manhattan similarity.
"""

from __future__ import annotations

import json
import time

SIZES = (2, 5, 10, 20, 50, 100, 200, 300, 500, 700, 1000)
# (label, similarity, separation, separation kwargs)
SIM_SWEEP = [(s, s, "max", {}) for s in ("dot", "cosine", "euclidean", "manhattan")]
SEP_SWEEP = [
    ("max", "manhattan", "max", {}),
    ("softmax b=1", "manhattan", "softmax", {"beta": 1.0}),
    ("softmax b=0.1", "manhattan", "softmax", {"beta": 0.1}),
    ("topk k=5 b=1", "manhattan", "topk", {"beta": 1.0, "k": 5}),
    ("poly n=10 (1/d)", "inv_manhattan", "polynomial", {"n": 10}),
    ("poly n=2 (1/d)", "inv_manhattan", "polynomial", {"n": 2}),
    ("identity (1/d)", "inv_manhattan", "identity", {}),
]
CORRUPTIONS = ("noise", "halved")


def corrupt(x, kind: str, sigma: float, generator):
    """The official code's corruptions of images ``x (Q, H, W)`` in [0, 1]."""
    import torch

    if kind == "noise":
        noise = torch.randn(x.shape, generator=generator) * sigma
        return (x + noise.to(x.device)).abs().clamp(0.0, 1.0)
    if kind == "halved":
        out = x.clone()
        out[:, x.shape[1] // 2:, :] = 0.0
        return out
    raise ValueError(f"unknown corruption {kind!r}; known: {', '.join(CORRUPTIONS)}")


def capacity(images, sizes, configs, corruptions=CORRUPTIONS, seeds=(0, 1, 2, 3, 4),
             sigma: float = 0.5, threshold: float | None = None, device="cpu") -> dict:
    """Fraction of correct retrievals: ``{corruption: {label: {"mean": [...], "std": [...]}}}``.

    :param images: ``(M, H, W)`` float in [0, 1].
    :param sizes: numbers of stored images (each <= M).
    :param configs: ``(label, similarity, separation, kwargs)`` tuples.
    :param threshold: summed squared error that counts as correct; ``None``: ``60 * H*W/784``.
    """
    import numpy as np
    import torch

    from memagent.memory.hopfield import retrieve

    images = torch.as_tensor(images, dtype=torch.float32)
    pixels = images.shape[1] * images.shape[2]
    threshold = 60.0 * pixels / 784 if threshold is None else threshold
    out = {c: {lab: np.zeros((len(seeds), len(sizes))) for lab, *_ in configs} for c in corruptions}
    for si, seed in enumerate(seeds):
        g = torch.Generator().manual_seed(seed)
        for ni, n in enumerate(sizes):
            stored = images[torch.randperm(len(images), generator=g)[:n]].to(device)  # (n, H, W)
            flat = stored.reshape(n, pixels)  # (n, H, W) -> (n, P)
            for c in corruptions:
                queries = corrupt(stored, c, sigma, g).reshape(n, pixels)
                for lab, sim, sep, kw in configs:
                    z = retrieve(queries, flat, similarity=sim, separation=sep, **kw)
                    err = (z - flat).square().sum(-1)
                    out[c][lab][si, ni] = float((err <= threshold).float().mean())
    return {"threshold": threshold, "pixels": pixels, "sizes": list(sizes),
            "results": {c: {lab: {"mean": a.mean(0).tolist(), "std": a.std(0).tolist()}
                            for lab, a in r.items()} for c, r in out.items()}}


def plot(result: dict, path: str, title: str) -> None:
    """Fraction correct against N: rows = corruption, columns = similarity / separation sweep."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes, res = result["sizes"], result["results"]
    groups = [("similarity (max separation)", [c[0] for c in SIM_SWEEP]),
              ("separation (Manhattan similarity)", [c[0] for c in SEP_SWEEP])]
    fig, axes = plt.subplots(len(res), 2, figsize=(11, 4 * len(res)), squeeze=False)
    for r, (corr, curves) in enumerate(res.items()):
        for col, (gname, labels) in enumerate(groups):
            ax = axes[r][col]
            for lab in labels:
                if lab in curves:
                    m, s = curves[lab]["mean"], curves[lab]["std"]
                    ax.errorbar(sizes, m, yerr=s, label=lab, marker="o", ms=3, capsize=2)
            ax.set_xscale("log")
            ax.set_ylim(-0.02, 1.02)
            ax.set_xlabel("images stored N")
            ax.set_ylabel("fraction correct")
            ax.set_title(f"{corr}: {gname}", fontsize=10)
            ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _handler(args) -> int:
    import torch

    from memagent.bench.common import report
    from memagent.data import load_digits, load_mnist
    from memagent.utils import resolve_device

    if args.seeds < 1:
        raise ValueError(f"--seeds must be >= 1, got {args.seeds}")
    if not args.sigma > 0:
        raise ValueError(f"--sigma must be > 0, got {args.sigma}")
    images = load_mnist(args.mnist)[0] if args.mnist else load_digits()[0]
    name = "MNIST" if args.mnist else "scikit-learn digits (8x8)"
    sizes = [n for n in SIZES if n <= len(images)]
    if args.quick:
        sizes, seeds = [n for n in sizes if n <= 100][::2], range(args.seed, args.seed + 2)
    else:
        seeds = range(args.seed, args.seed + args.seeds)
    device = resolve_device(args.device)
    start = time.perf_counter()
    result = capacity(images, sizes, SIM_SWEEP + SEP_SWEEP, seeds=tuple(seeds), sigma=args.sigma,
                      threshold=args.threshold, device=device)
    elapsed = time.perf_counter() - start
    print(f"{name}, {result['pixels']} pixels, threshold {result['threshold']:.2f} (summed "
          f"squared error), {len(seeds)} seeds, Gaussian sigma {args.sigma}, {device}, "
          f"{elapsed:.1f} s")
    tables = {}
    for corr, curves in result["results"].items():
        for gname, configs in (("similarity, max separation", SIM_SWEEP),
                               ("separation, Manhattan similarity", SEP_SWEEP)):
            print(f"\n{corr}: fraction correct by {gname} (mean +- std over seeds)")
            rows = [[lab] + [f"{m:.2f}+-{s:.2f}" for m, s in zip(curves[lab]["mean"],
                                                                 curves[lab]["std"], strict=True)]
                    for lab, *_ in configs]
            tables[f"{corr} / {gname}"] = report("capacity", ["N"] + [str(n) for n in sizes], rows)
    if args.json:
        from pathlib import Path

        payload = {"bench": "capacity", "data": name, "sigma": args.sigma, "seeds": list(seeds),
                   "device": str(device), "seconds": elapsed, **result}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(payload, indent=2))
    if args.plot:
        plot(result, args.plot, f"UHN capacity on {name}: threshold {result['threshold']:.1f}, "
             f"sigma {args.sigma}, {len(seeds)} seeds")
        print(f"\nplot written to {args.plot}")
    del torch
    return 0


def register(subparsers) -> None:
    from memagent.bench.common import add_common_args

    p = subparsers.add_parser(
        "capacity", help="Universal Hopfield capacity: fraction retrieved vs images stored",
        description=__doc__.split("\n\n")[1].replace("\n", " "))
    add_common_args(p)
    p.add_argument("--mnist", metavar="DIR", help="MNIST IDX files here instead of digits")
    p.add_argument("--threshold", type=float, default=None,
                   help="summed squared error counted as correct (default 60 * pixels / 784)")
    p.add_argument("--sigma", type=float, default=0.5, help="Gaussian noise std (default 0.5)")
    p.add_argument("--seeds", type=int, default=5, help="runs per point (default 5)")
    p.add_argument("--plot", metavar="FILE", help="write a PNG plot here")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda or auto")
    p.add_argument("--quick", action="store_true", help="N <= 100, 2 seeds (tests)")
    p.set_defaults(func=_handler)
