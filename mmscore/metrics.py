"""Metrics shared by `mmscore train` and `mmscore report`: per-class tables, confusion, calibration."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mmscore.labels import LABELS

RELIABILITY_BINS = 10  # equal-width bins of the top-label confidence over [0, 1]


def class_metrics(y: np.ndarray, pred: np.ndarray) -> dict:
    """Per-class precision/recall/F1/support, macro-F1, accuracy and the confusion matrix (scikit-learn)."""
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

    labels = list(range(len(LABELS)))
    p, r, f, s = precision_recall_fscore_support(y, pred, labels=labels, zero_division=0)
    return {
        "per_class": {
            LABELS[i]: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
            for i in labels
        },
        "macro_f1": float(np.mean(f)),
        "accuracy": float(accuracy_score(y, pred)),
        "confusion": confusion_matrix(y, pred, labels=labels).tolist(),
    }


def macro_f1(y: np.ndarray, pred: np.ndarray) -> float:
    """Unweighted mean of the per-class F1 (0 for a class never seen nor predicted).

    NumPy, not scikit-learn: offset tuning calls this thousands of times, and scikit-learn's input
    validation made that 14 s of a 64 s training run.
    """
    k = len(LABELS)
    confusion = np.bincount(np.asarray(y) * k + np.asarray(pred), minlength=k * k).reshape(k, k)
    hits = np.diag(confusion).astype(np.float64)
    denominator = confusion.sum(0) + confusion.sum(1)  # predicted + actual = 2 TP + FP + FN
    return float(np.mean(np.divide(2 * hits, denominator, out=np.zeros(k), where=denominator > 0)))


def softmax(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


@dataclass
class CalibrationTally:
    """Streaming sums for ECE, log-loss, Brier and a reliability diagram; feed it chunks with :meth:`add`."""

    bins: int = RELIABILITY_BINS
    rows: int = 0
    log_loss_sum: float = 0.0
    brier_sum: float = 0.0
    counts: np.ndarray = field(init=False)
    confidence_sum: np.ndarray = field(init=False)
    correct_sum: np.ndarray = field(init=False)

    def __post_init__(self):
        self.counts = np.zeros(self.bins, np.int64)
        self.confidence_sum = np.zeros(self.bins)
        self.correct_sum = np.zeros(self.bins)

    def add(self, probs: np.ndarray, y: np.ndarray) -> None:
        probs = np.asarray(probs, np.float64)
        y = np.asarray(y, np.int64)
        if not len(y):
            return
        top = probs.max(1)
        correct = probs.argmax(1) == y
        which = np.minimum((top * self.bins).astype(np.int64), self.bins - 1)
        self.counts += np.bincount(which, minlength=self.bins)
        self.confidence_sum += np.bincount(which, top, minlength=self.bins)
        self.correct_sum += np.bincount(which, correct.astype(np.float64), minlength=self.bins)
        self.log_loss_sum += float(-np.log(np.clip(probs[np.arange(len(y)), y], 1e-12, 1.0)).sum())
        self.brier_sum += float(((probs - np.eye(probs.shape[1])[y]) ** 2).sum())
        self.rows += len(y)

    def summary(self) -> dict:
        """ECE (top label), mean log-loss, mean multi-class Brier score, mean confidence, accuracy, bins."""
        n = max(self.rows, 1)
        used = self.counts > 0
        gap = np.abs(self.confidence_sum - self.correct_sum)  # per bin: count * |mean confidence - accuracy|
        return {
            "rows": int(self.rows),
            "ece": float(gap[used].sum() / n),
            "log_loss": self.log_loss_sum / n,
            "brier": self.brier_sum / n,
            "mean_confidence": float(self.confidence_sum.sum() / n),
            "accuracy": float(self.correct_sum.sum() / n),
            "reliability": [
                {
                    "bin": [i / self.bins, (i + 1) / self.bins],
                    "rows": int(self.counts[i]),
                    "mean_confidence": float(self.confidence_sum[i] / self.counts[i]) if self.counts[i] else None,
                    "accuracy": float(self.correct_sum[i] / self.counts[i]) if self.counts[i] else None,
                }
                for i in range(self.bins)
            ],
        }


def calibration(probs: np.ndarray, y: np.ndarray) -> dict:
    """:meth:`CalibrationTally.summary` of one array of probabilities."""
    tally = CalibrationTally()
    tally.add(probs, y)
    return tally.summary()


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """The temperature T > 0 minimising the log-loss of ``softmax(logits / T)``; argmax never changes."""
    from scipy.optimize import minimize_scalar

    logits = np.asarray(logits, np.float64)
    rows = np.arange(len(y))

    def nll(log_t: float) -> float:
        return float(-np.log(np.clip(softmax(logits / np.exp(log_t))[rows, y], 1e-12, 1.0)).mean())

    # T within [0.05, 20]: a wider range only happens with degenerate data and helps nobody.
    best = minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded")
    return float(np.exp(best.x))
