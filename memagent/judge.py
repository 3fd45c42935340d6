"""Judges for imagined samples: classifiers trained on real data, never on the memories.

MAN's claim (§4) is that the long-term memory imagines recognisable samples of a class it
was asked for. A judge measures it without trusting the memory: a linear classifier
(logistic or ridge regression) trained on *real* items (digits, or screens average-pooled in
``pool x pool`` blocks) predicts the class of every imagined item; the score is the share
recognised as the class asked for.

For screens the linear judge is weak (the ridge classifier recognises ~87% of held-out real
Screens-v0 screens: distractors, shifts and noise are not linear in pixels), so screens get
``classifier="cnn"``: a small convolutional network (three 3x3 conv + max-pool blocks on the
2x2-pooled screen, a linear head) trained with Adam and +-2 px shift augmentation on the real
screens only; ~99% on held-out real screens after well under a minute on one CPU core.

The CNN judge also gives the feature space of two measures of imagined screens (docs/man.md),
:func:`variety_fidelity`: **variety**, the mean pairwise distance of a state's screens (the
judge's penultimate features), imagined against real; **fidelity**, the distance of each
imagined screen to its nearest real screen of the same state, against the same distance of
real screens that are not in the reference set.
"""

from __future__ import annotations

import numpy as np


def _features(images: np.ndarray, item_ndim: int, pool: int) -> np.ndarray:
    """(N, *item) -> (N, F) floats in [0, 1]; channels-last images are average-pooled."""
    x = np.asarray(images)
    scale = 255.0 if x.dtype == np.uint8 else 1.0
    x = x.astype(np.float32) / scale
    if item_ndim == 3 and pool > 1:
        n, h, w, c = x.shape
        x = x.reshape(n, h // pool, pool, w // pool, pool, c).mean((2, 4))  # (N, H/p, W/p, C)
    return x.reshape(len(x), -1)


class Judge:
    """A classifier of items trained on real ones.

    :param pool: average-pooling block for channels-last images (64 x 64 screens -> 32 x 32
        with ``pool=2``); ignored for vectors and 2-D images.
    :param classifier: ``"logistic"`` (scikit-learn's LogisticRegression), ``"ridge"``
        (RidgeClassifier: a closed-form fit, seconds on thousands of screens) or ``"cnn"``
        (:class:`CNNClassifier`, channels-last images only: the strong judge for screens).
    :param seed: the classifier's seed.
    :param cnn_kwargs: passed to :class:`CNNClassifier` (``epochs``, ``shift``, ...).
    """

    def __init__(self, pool: int = 2, classifier: str = "logistic", seed: int = 0,
                 cnn_kwargs: dict | None = None):
        if classifier not in ("logistic", "ridge", "cnn"):
            raise ValueError(f"classifier must be 'logistic', 'ridge' or 'cnn', got {classifier!r}")
        self.pool, self.classifier, self.seed = int(pool), classifier, seed
        self.cnn_kwargs = dict(cnn_kwargs or {})
        self.item_ndim: int | None = None

    def fit(self, images: np.ndarray, labels: np.ndarray) -> Judge:
        from sklearn.linear_model import LogisticRegression, RidgeClassifier

        images, labels = np.asarray(images), np.asarray(labels)
        if len(images) != len(labels) or len(images) == 0:
            raise ValueError(f"need as many labels as images (> 0), got {len(images)} images, "
                             f"{len(labels)} labels")
        self.item_ndim = images.ndim - 1
        if self.classifier == "cnn":
            if self.item_ndim != 3:
                raise ValueError(f"the cnn judge needs (N, H, W, C) images, got {images.shape}")
            self.clf = CNNClassifier(pool=self.pool, seed=self.seed, **self.cnn_kwargs)
            self.clf.fit(images, labels)
            return self
        self.clf = (RidgeClassifier(alpha=1.0) if self.classifier == "ridge" else
                    LogisticRegression(max_iter=1000, C=1.0, random_state=self.seed))
        self.clf.fit(_features(images, self.item_ndim, self.pool), labels)
        return self

    def predict(self, images: np.ndarray) -> np.ndarray:
        if self.item_ndim is None:
            raise ValueError("fit the judge on real items before predict")
        images = np.asarray(images)
        if len(images) == 0:
            return np.zeros(0, dtype=np.int64)
        if self.classifier == "cnn":
            return self.clf.predict(images)
        return self.clf.predict(_features(images, self.item_ndim, self.pool))

    def features(self, images: np.ndarray) -> np.ndarray:
        """(N, F) penultimate activations of the CNN judge (the input of its linear head)."""
        if self.classifier != "cnn" or self.item_ndim is None:
            raise ValueError("features need a fitted judge with classifier='cnn'")
        return self.clf.features(np.asarray(images))

    def score(self, images: np.ndarray, labels: np.ndarray) -> float:
        return float((self.predict(images) == np.asarray(labels)).mean())

    def per_class(self, imagined: np.ndarray, keys) -> np.ndarray:
        """Share of imagined items recognised as the class asked for.

        :param imagined: (K, n, *item) as returned by ``memory.imagine(keys, n)``.
        :return: (K,) accuracy per asked class.
        """
        keys = np.asarray(keys)
        k, n = imagined.shape[:2]
        pred = self.predict(imagined.reshape(k * n, *imagined.shape[2:])).reshape(k, n)
        return (pred == keys[:, None]).mean(1)


class CNNClassifier:
    """A small CNN of channels-last images -> class, trained on real items only.

    The image is average-pooled in ``pool x pool`` blocks, then three blocks of 3x3 conv, ReLU
    and 2x2 max-pool, and a linear head on the flattened map (position in the image matters:
    on screens it is the agent's cell). Each batch is shifted by up to ``shift`` pixels (of the
    pooled image, edge-padded) so that the judge does not hang on exact pixel positions.

    :param steps: Adam steps of ``batch_size`` items (one-cycle step size), whatever the number
        of items: ~20 s on one CPU core for 64 x 64 screens with the defaults.
    """

    def __init__(self, pool: int = 2, channels: tuple[int, ...] = (16, 32, 64), steps: int = 900,
                 batch_size: int = 64, learning_rate: float = 3e-3, shift: int = 1,
                 seed: int = 0):
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        self.pool, self.channels, self.steps = int(pool), tuple(channels), int(steps)
        self.batch_size, self.learning_rate = int(batch_size), float(learning_rate)
        self.shift, self.seed = int(shift), seed
        self.net = None

    def _tensor(self, images: np.ndarray):
        import torch as th
        import torch.nn.functional as F

        x = np.asarray(images)
        scale = 255.0 if x.dtype == np.uint8 else 1.0
        out = []
        for b in range(0, len(x), 512):  # full-size floats 512 screens at a time, not all at once
            chunk = th.as_tensor(x[b:b + 512].astype(np.float32) / scale).permute(0, 3, 1, 2)
            out.append(F.avg_pool2d(chunk, self.pool) if self.pool > 1 else chunk)
        return th.cat(out) if out else th.zeros((0, x.shape[3], *x.shape[1:3]))

    def _build(self, shape, n_classes: int):
        import torch.nn as nn

        c, h, w = shape
        layers, cin = [], c
        for cout in self.channels:
            layers += [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
            cin, h, w = cout, h // 2, w // 2
        return nn.Sequential(*layers, nn.Flatten(), nn.Dropout(0.2),
                             nn.Linear(cin * h * w, n_classes))

    def fit(self, images: np.ndarray, labels: np.ndarray) -> CNNClassifier:
        import torch as th

        with th.random.fork_rng(devices=[]):  # weights and dropout from `seed`; the global RNG untouched
            th.manual_seed(self.seed)
            return self._fit(images, labels)

    def _fit(self, images: np.ndarray, labels: np.ndarray) -> CNNClassifier:
        import torch as th
        import torch.nn.functional as F

        gen = th.Generator().manual_seed(self.seed)
        self.classes_, y = np.unique(np.asarray(labels), return_inverse=True)
        x, y = self._tensor(images), th.as_tensor(y, dtype=th.long)
        self.net = self._build(x.shape[1:], len(self.classes_))
        opt = th.optim.Adam(self.net.parameters(), lr=self.learning_rate)
        sched = th.optim.lr_scheduler.OneCycleLR(opt, self.learning_rate, total_steps=self.steps)
        k, bs = self.shift, min(self.batch_size, len(x))
        self.net.train()
        order, at = th.randperm(len(x), generator=gen), 0
        for _ in range(self.steps):
            if at + bs > len(x):  # a new pass over the items
                order, at = th.randperm(len(x), generator=gen), 0
            idx, at = order[at:at + bs], at + bs
            xb = x[idx]
            if k > 0:
                h, w = xb.shape[2:]
                xb = F.pad(xb, (k, k, k, k), mode="replicate")
                dy, dx = th.randint(0, 2 * k + 1, (2,), generator=gen).tolist()
                xb = xb[:, :, dy:dy + h, dx:dx + w]
            loss = F.cross_entropy(self.net(xb), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        self.net.eval()
        return self

    def features(self, images: np.ndarray) -> np.ndarray:
        """(N, F): the flattened conv map, what the linear head reads."""
        import torch as th

        body = self.net[:-2]  # without Dropout and the head
        out = [np.zeros((0, self.net[-1].in_features), np.float32)]
        with th.no_grad():
            for b in range(0, len(images), 512):
                out.append(body(self._tensor(images[b:b + 512])).numpy())
        return np.concatenate(out)

    def predict(self, images: np.ndarray) -> np.ndarray:
        import torch as th

        out = []
        with th.no_grad():
            for b in range(0, len(images), 512):
                out.append(self.net(self._tensor(images[b:b + 512])).argmax(1).numpy())
        return self.classes_[np.concatenate(out)]


def _pairwise(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(m, F), (r, F) -> (m, r) Euclidean distances."""
    d2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None] - 2.0 * a @ b.T
    return np.sqrt(np.maximum(d2, 0.0))


def variety_fidelity(judge: Judge, imagined: np.ndarray, real: np.ndarray,
                     n_probe: int | None = None) -> dict:
    """Variety and fidelity of imagined items in the judge's feature space, per class.

    For class k with imagined items ``I`` (n) and real items split into probes ``P`` (the first
    ``n_probe``, default n) and a reference set ``R`` (the rest):

    - variety: mean pairwise distance within ``I``, and within ``P`` (real);
    - fidelity: mean distance of each item of ``I`` to its nearest item of ``R``, and of each
      item of ``P`` to its nearest of ``R`` (real-to-real, same reference, same set sizes).

    :param imagined: (K, n, *item), n >= 2.
    :param real: (K, m, *item), m > n_probe + 0 with n_probe >= 2.
    :return: ``{"variety": imagined / real (ratio of the class means), "fidelity": imagined /
        real, "variety_imagined", "variety_real", "nearest_imagined", "nearest_real"}``, the
        last four (K,) arrays.
    """
    imagined, real = np.asarray(imagined), np.asarray(real)
    k, n = imagined.shape[:2]
    n_probe = n if n_probe is None else int(n_probe)
    if n < 2 or n_probe < 2 or real.shape[0] != k or real.shape[1] <= n_probe:
        raise ValueError(f"need >= 2 imagined items per class and more than n_probe={n_probe} "
                         f">= 2 real ones for each of the same classes, got imagined "
                         f"{imagined.shape[:2]}, real {real.shape[:2]}")
    m = real.shape[1]
    fi = judge.features(imagined.reshape(k * n, *imagined.shape[2:])).reshape(k, n, -1)
    fr = judge.features(real.reshape(k * m, *real.shape[2:])).reshape(k, m, -1)
    out = {name: np.zeros(k) for name in ("variety_imagined", "variety_real",
                                          "nearest_imagined", "nearest_real")}
    off = ~np.eye(n, dtype=bool)
    off_p = ~np.eye(n_probe, dtype=bool)
    for c in range(k):
        probe, ref = fr[c, :n_probe], fr[c, n_probe:]
        out["variety_imagined"][c] = _pairwise(fi[c], fi[c])[off].mean()
        out["variety_real"][c] = _pairwise(probe, probe)[off_p].mean()
        out["nearest_imagined"][c] = _pairwise(fi[c], ref).min(1).mean()
        out["nearest_real"][c] = _pairwise(probe, ref).min(1).mean()
    out["variety"] = float(out["variety_imagined"].mean() / out["variety_real"].mean())
    out["fidelity"] = float(out["nearest_imagined"].mean() / out["nearest_real"].mean())
    return out
