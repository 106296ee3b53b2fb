"""Cross-validation: folds, head fits per fold, offsets and temperature cross-fitted on out-of-fold logits."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mmscore.labels import LABEL_INDEX, LABELS
from mmscore.metrics import calibration, class_metrics, fit_temperature, macro_f1, softmax
from mmscore.training.embeddings import PairEmbeddings
from mmscore.training.head_fit import FineTuner, fit_heads, head_logits
from mmscore.training.options import Progress, TrainOptions
from mmscore.training.probes import PROBE_SEED, PhotoPlan, _robustness


def tune_offsets(logits: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per-class logit offsets (NoEntailment fixed at 0) that maximise macro-F1 on ``logits``."""
    grid = np.arange(-2.0, 4.01, 0.25)
    best, best_score = np.zeros(len(LABELS)), -1.0
    base = LABEL_INDEX["NoEntailment"]
    others = [i for i in range(len(LABELS)) if i != base]
    for a in grid:
        for b in grid:
            offsets = np.zeros(len(LABELS))
            offsets[others] = (a, b)
            score = macro_f1(y, (logits + offsets).argmax(1))
            # ties go to the smaller shift: less distortion of the probabilities
            if score > best_score + 1e-9 or (
                abs(score - best_score) <= 1e-9 and np.abs(offsets).sum() < np.abs(best).sum()
            ):
                best, best_score = offsets, score
    return best


def cross_validate(
    emb: PairEmbeddings,
    y: np.ndarray,
    loss: str,
    options: TrainOptions,
    tuner: FineTuner | None = None,
    plan: PhotoPlan | None = None,
    layout: RowLayout | None = None,
) -> tuple[dict, np.ndarray]:
    """Stratified k-fold metrics with cross-fitted offsets and temperature; also returns the out-of-fold logits.

    With photos in ``plan``, every fold's validation rows are scored again with unrelated probe photos
    attached, and the share of labels that change is reported per fold and overall.
    """
    plan = plan or PhotoPlan(uses_images=True)
    layout = layout or RowLayout.stratified(y, options)
    folds = layout.folds()
    scored = plan.scoring_view(emb)
    oof = np.zeros((len(y), len(LABELS)), np.float32)
    probe_oof: dict[str, np.ndarray] = {}
    for k, (train_rows, test_rows) in enumerate(folds):
        seed = options.seed + k
        trained_on = layout.training_rows(train_rows)
        head = fit_heads(plan.training_set(emb, y, trained_on, seed), loss, options, seed, plan.epochs(options))
        model = head if tuner is None else tuner.train(head, scored, y, train_rows, loss, options)
        logits = head_logits if tuner is None else tuner.logits
        oof[test_rows] = logits(model, scored, test_rows)
        for name, probed in plan.probes(emb, test_rows, PROBE_SEED + seed).items():
            probe_oof.setdefault(name, np.zeros_like(oof))[test_rows] = logits(model, probed, test_rows)
    n = layout.rows_validated  # built pairs are trained on, never scored
    groups = {name: mask[:n] for name, mask in layout.groups.items()}
    probe_oof = {name: logits[:n] for name, logits in probe_oof.items()}
    calibrated = None if layout.calibrated is None else layout.calibrated[:n]
    return _cross_fitted_metrics(oof[:n], probe_oof, y[:n], folds, groups, calibrated), oof[:n]


def cv_fold_ids(y: np.ndarray, options: TrainOptions) -> np.ndarray:
    """Each row's stratified fold: the folds every cross-fitted step of one training run shares."""
    from sklearn.model_selection import StratifiedKFold

    ids = np.zeros(len(y), np.int64)
    for k, (_train, test) in enumerate(
        StratifiedKFold(options.folds, shuffle=True, random_state=options.seed).split(y, y)
    ):
        ids[test] = k
    return ids


@dataclass(frozen=True)
class RowLayout:
    """Which fold each row is validated in, how many times it is repeated when trained on (a user's new rows
    weigh more than the base model's many), and groups of rows whose metrics are reported apart.

    ``validated``: only the first rows are ever validated; the rows after them (pairs built from the
    training tweets: ``train/tweet_edits.py``) carry their source row's fold and are trained on
    only while that fold is not the one validated."""

    fold_ids: np.ndarray
    repeat: np.ndarray | None = None
    groups: dict[str, np.ndarray] = field(default_factory=dict)  # name -> boolean row mask
    validated: int | None = None  # None: every row
    # Rows the decision offsets and temperature are fitted on (None: every validated row). Extending a model,
    # the base rows: a few hundred new rows of another kind must not move the thresholds the base rows need.
    calibrated: np.ndarray | None = None

    @classmethod
    def stratified(cls, y: np.ndarray, options: TrainOptions) -> RowLayout:
        return cls(cv_fold_ids(y, options))

    def folds(self) -> list[tuple[np.ndarray, np.ndarray]]:
        everything = np.arange(len(self.fold_ids))
        checked = everything < self.rows_validated
        return [
            (everything[self.fold_ids != k], everything[(self.fold_ids == k) & checked])
            for k in np.unique(self.fold_ids)
        ]

    @property
    def rows_validated(self) -> int:
        return len(self.fold_ids) if self.validated is None else self.validated

    def training_rows(self, rows: np.ndarray) -> np.ndarray:
        return rows if self.repeat is None else np.repeat(rows, self.repeat[rows])


def spread_over_folds(y: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """A fold id per row, each class dealt round-robin over the folds in a seeded order (works for any count)."""
    rng = np.random.default_rng(seed)
    ids = np.zeros(len(y), np.int64)
    for label in np.unique(y):
        rows = rng.permutation(np.flatnonzero(y == label))
        ids[rows] = np.arange(len(rows)) % folds
    return ids


def fold_calibrations(oof: np.ndarray, y: np.ndarray, folds: list, calibrated=None):
    """Per fold, ``(validation rows, offsets, temperature)``: both fitted on the other folds' out-of-fold logits
    (of those, only the ``calibrated`` rows when given), as the final model's are on every row."""
    for _train_rows, test_rows in folds:
        others = np.setdiff1d(np.arange(len(y)) if calibrated is None else np.flatnonzero(calibrated), test_rows)
        offsets = tune_offsets(oof[others], y[others])
        yield test_rows, offsets, fit_temperature(oof[others] + offsets, y[others])


def cross_fitted_labels(oof: np.ndarray, y: np.ndarray, folds: list, calibrated=None) -> np.ndarray:
    """The label each validated row gets out of fold, with its fold's cross-fitted offsets."""
    pred = np.zeros(len(y), np.int64)
    for test_rows, offsets, _temperature in fold_calibrations(oof, y, folds, calibrated):
        pred[test_rows] = (oof[test_rows] + offsets).argmax(1)
    return pred


def _cross_fitted_metrics(
    oof: np.ndarray, probe_oof: dict, y: np.ndarray, folds: list, groups=None, calibrated=None
) -> dict:
    """Metrics of out-of-fold logits where each fold's offsets and temperature come only from the other folds
    (of those, only the ``calibrated`` rows when given)."""
    pred = np.zeros(len(y), np.int64)
    before, after = np.zeros(oof.shape), np.zeros(oof.shape)
    probe_pred = {name: np.zeros(len(y), np.int64) for name in probe_oof}
    per_fold = []
    for k, (test_rows, offsets, temperature) in enumerate(fold_calibrations(oof, y, folds, calibrated)):
        shifted = oof[test_rows] + offsets
        pred[test_rows] = shifted.argmax(1)
        before[test_rows], after[test_rows] = softmax(shifted), softmax(shifted / temperature)
        fold = {
            "fold": k,
            "rows": int(len(test_rows)),
            "macro_f1": macro_f1(y[test_rows], pred[test_rows]),
            "offsets": [float(x) for x in offsets],
            "temperature": temperature,
            "calibration_before": _brief(calibration(before[test_rows], y[test_rows])),
            "calibration_after": _brief(calibration(after[test_rows], y[test_rows])),
        }
        for name, logits in probe_oof.items():
            probe_pred[name][test_rows] = (logits[test_rows] + offsets).argmax(1)
            fold[name] = _robustness(y[test_rows], pred[test_rows], probe_pred[name][test_rows])
        per_fold.append(fold)
    metrics = class_metrics(y, pred)
    metrics["without_offsets"] = class_metrics(y, oof.argmax(1))
    metrics["calibration"] = {"before": calibration(before, y), "after": calibration(after, y)}
    metrics["robustness"] = {name: _robustness(y, pred, p) for name, p in probe_pred.items()}
    metrics["per_fold"] = per_fold
    metrics["groups"] = {name: class_metrics(y[mask], pred[mask]) for name, mask in (groups or {}).items()}
    return metrics


def seed_figures(seed: int, metrics: dict) -> dict:
    """One cross-validation's headline figures, for the card's list over seeds: macro-F1, accuracy, F1 per label,
    ECE after the temperature, and per photo probe the share of labels changed (overall and worst fold)."""
    figures = {
        "seed": seed,
        "macro_f1": round(metrics["macro_f1"], 4),
        "accuracy": round(metrics["accuracy"], 4),
        "f1": {label: round(m["f1"], 4) for label, m in metrics["per_class"].items()},
        "ece": round(metrics["calibration"]["after"]["ece"], 4),
    }
    for probe, robustness in metrics["robustness"].items():
        worst = max(fold[probe]["flip_rate"] for fold in metrics["per_fold"])
        figures[f"flips_{probe}"] = {"all": round(robustness["flip_rate"], 4), "worst_fold": round(worst, 4)}
    return figures


def over_seeds(per_seed: list[dict]) -> dict:
    """Mean and sample sd over seeds of each headline figure (sd None for one seed)."""

    def spread(values: list[float]) -> dict:
        sd = float(np.std(values, ddof=1)) if len(values) > 1 else None
        return {"mean": round(float(np.mean(values)), 4), "sd": None if sd is None else round(sd, 4)}

    figures = {"seeds": len(per_seed), "macro_f1": spread([s["macro_f1"] for s in per_seed])}
    figures["accuracy"] = spread([s["accuracy"] for s in per_seed])
    figures["f1"] = {label: spread([s["f1"][label] for s in per_seed]) for label in per_seed[0]["f1"]}
    figures["ece"] = spread([s["ece"] for s in per_seed])
    for key in (k for k in per_seed[0] if k.startswith("flips_")):
        figures[key] = {part: spread([s[key][part] for s in per_seed]) for part in ("all", "worst_fold")}
    return figures


def _brief(summary: dict) -> dict:
    return {k: v for k, v in summary.items() if k != "reliability"}


def compare_losses(emb, y, options: TrainOptions, tuner, plan: PhotoPlan, progress: Progress, layout=None):
    """Cross-validate each loss: ``(metrics per loss, out-of-fold logits per loss, the best loss by macro-F1)``."""
    kind = "fine-tuning" if tuner else "frozen encoders"
    per_loss, oofs = {}, {}
    for loss in options.losses:
        progress(f"{options.folds}-fold cross-validation ({kind}), loss={loss}")
        per_loss[loss], oofs[loss] = cross_validate(emb, y, loss, options, tuner, plan, layout)
    return per_loss, oofs, max(options.losses, key=lambda name: per_loss[name]["macro_f1"])
