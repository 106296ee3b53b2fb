"""Choosing the second head's recipe (rows out of domain): cross-validation on the invented plain-language
pairs, grouped by scene (a scene's three pairs share their first text, so they are held out together), and
accuracy on the textbook pairs (written at another time, about other scenes) as the check, never the judge.

    .venv/bin/python train/second_head_study.py

Prints one line per feature set and L2 strength: grouped-CV accuracy and macro-F1 (mean ± sd over 5 seeds
of the fold assignment), per-label recall, and textbook accuracy of the head fitted on all plain pairs.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
FEATURE_SETS = {
    "cos": lambda u, v, lex: [np.sum(u * v, 1, keepdims=True)],
    "cos+lexical": lambda u, v, lex: [np.sum(u * v, 1, keepdims=True), lex],
    "u*v+cos+lexical": lambda u, v, lex: [u * v, np.sum(u * v, 1, keepdims=True), lex],
    "|u-v|+cos+lexical": lambda u, v, lex: [np.abs(u - v), np.sum(u * v, 1, keepdims=True), lex],
    "u*v+|u-v|+cos+lexical (shipped)": lambda u, v, lex: [u * v, np.abs(u - v), np.sum(u * v, 1, keepdims=True), lex],
}


def embedded(name: str):
    from mmscore.encoders import registry
    from mmscore.labels import LABEL_INDEX
    from mmscore.model.domain import unit
    from mmscore.model.pair_features import V2 as LEXICAL  # the earlier second head's word features
    from mmscore.model.pair_features import pair_features

    df = pd.read_csv(ROOT / "sample_data" / name, dtype=str)
    text = registry.text_encoder()
    u, v = unit(text.encode(list(df["text_1"]))), unit(text.encode(list(df["text_2"])))
    lex = pair_features(list(df["text_1"]), list(df["text_2"]), LEXICAL)
    return df, u, v, lex, np.array([LABEL_INDEX[x] for x in df["label"]])


def fitted(x, y, strength):
    from sklearn.linear_model import LogisticRegression

    mean, scale = x.mean(0), x.std(0) + 1e-6
    model = LogisticRegression(C=strength, max_iter=5000, class_weight="balanced").fit((x - mean) / scale, y)
    return lambda z: model.predict((z - mean) / scale)


def extension_accuracy(x, y, xb, yb, weight: int, strength: float) -> float:
    """The issue-31 bar on the textbook pairs: fit on the plain pairs and 5 textbook pairs per label (each counted
    ``weight`` times), test on the other 15; both halves in turn, so all 30 are tested once."""
    position = pd.Series(yb).groupby(yb).cumcount().to_numpy()
    right = 0
    for half in (0, 1):
        labelled = position % 2 == half
        rows = np.concatenate([x, np.repeat(xb[labelled], weight, axis=0)])
        labels = np.concatenate([y, np.repeat(yb[labelled], weight)])
        right += int((fitted(rows, labels, strength)(xb[~labelled]) == yb[~labelled]).sum())
    return right / len(yb)


def main() -> None:
    from sklearn.metrics import f1_score
    from sklearn.model_selection import GroupKFold

    plain, pu, pv, plex, py = embedded("plain_pairs.csv")
    book, bu, bv, blex, by = embedded("textbook_pairs.csv")
    scenes = plain["pair_id"].str[:3].to_numpy()
    for name, build in FEATURE_SETS.items():
        x, xb = np.hstack(build(pu, pv, plex)), np.hstack(build(bu, bv, blex))
        for strength in (0.03, 0.1, 0.3, 1.0, 3.0):
            accuracy, f1, recall = [], [], []
            for seed in range(5):
                pred = np.zeros(len(py), np.int64)
                for train_rows, test_rows in GroupKFold(5, shuffle=True, random_state=seed).split(x, py, scenes):
                    pred[test_rows] = fitted(x[train_rows], py[train_rows], strength)(x[test_rows])
                accuracy.append((pred == py).mean())
                f1.append(f1_score(py, pred, average="macro"))
                recall.append([(pred[py == k] == k).mean() for k in range(3)])
            book_accuracy = (fitted(x, py, strength)(xb) == by).mean()
            extended = {weight: extension_accuracy(x, py, xb, by, weight, strength) for weight in (1, 3, 10)}
            line = {"features": name, "C": strength, "cv_accuracy": f"{np.mean(accuracy):.3f} ± {np.std(accuracy):.3f}"}
            line.update(cv_macro_f1=f"{np.mean(f1):.3f} ± {np.std(f1):.3f}")
            line.update(recall_c_i_n=np.round(np.mean(recall, 0), 2).tolist(), textbook=round(float(book_accuracy), 3))
            line.update({f"textbook halves, weight {w}": round(a, 3) for w, a in extended.items()})
            print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
