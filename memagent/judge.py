"""Judges for imagined samples: classifiers trained on real data, never on the memories.

MAN's claim (§4) is that the long-term memory imagines recognisable samples of a class it
was asked for. A judge measures it without trusting the memory: a linear classifier
(logistic or ridge regression) trained on *real* items (digits, or screens average-pooled in
``pool x pool`` blocks) predicts the class of every imagined item; the score is the share
recognised as the class asked for.
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
    :param classifier: ``"logistic"`` (scikit-learn's LogisticRegression) or ``"ridge"``
        (RidgeClassifier: a closed-form fit, seconds on thousands of screens).
    :param seed: the classifier's seed.
    """

    def __init__(self, pool: int = 2, classifier: str = "logistic", seed: int = 0):
        if classifier not in ("logistic", "ridge"):
            raise ValueError(f"classifier must be 'logistic' or 'ridge', got {classifier!r}")
        self.pool, self.classifier, self.seed = int(pool), classifier, seed
        self.item_ndim: int | None = None

    def fit(self, images: np.ndarray, labels: np.ndarray) -> Judge:
        from sklearn.linear_model import LogisticRegression, RidgeClassifier

        images, labels = np.asarray(images), np.asarray(labels)
        if len(images) != len(labels) or len(images) == 0:
            raise ValueError(f"need as many labels as images (> 0), got {len(images)} images, "
                             f"{len(labels)} labels")
        self.item_ndim = images.ndim - 1
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
        return self.clf.predict(_features(images, self.item_ndim, self.pool))

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
