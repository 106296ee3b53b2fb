"""How the second head's mapping is fitted (mmscore.model.second_head.fit_mapping), measured on real pairs only:

- the SNLI rows the shipped second head keeps (its reader's dev pairs and pairs of two captions), each labelled by
  a mapping fitted without its fold (a premise's pairs held out together);
- 1,000 pairs of two real tweets from different labelled pairs (about different things: NoEntailment by
  construction; never rows of the second head), labelled by a mapping fitted on all its SNLI rows (500 of them
  join the relatedness fit in the "+ tweets" candidates, the other 500 are the ones counted).

    .venv/bin/python train/mapping_study.py

Needs ``../shared/data``. Candidates: which pairs the relatedness ``sigmoid(a cos + b)`` is fitted on (SNLI's
same-caption pairs all related, as shipped; its contradictions left out, since many describe another scene;
or that plus unrelated tweets) × how the calibration weighs the rows (balanced labels, as before; as the rows
come; or one temperature and no shift). The textbook pairs (ours) are printed as a check, all rows through the
second head; they choose nothing.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from study_data import DATA, ROOT

CROSS_PAIRS = 1000


def tweet_cross_pairs(seed: int = 0) -> pd.DataFrame:
    """``CROSS_PAIRS`` pairs joining the first text of one real tweet pair with the second text of another."""
    from mmscore.training import read_labelled_pairs

    df, _ = read_labelled_pairs(DATA / "tweets" / "tweets_trainval.csv")
    rng = np.random.default_rng(seed)
    first, other = rng.integers(0, len(df), (2, 3 * CROSS_PAIRS))
    keep = np.flatnonzero(first != other)[:CROSS_PAIRS]
    texts_1, texts_2 = df["text_1"].to_numpy(), df["text_2"].to_numpy()
    return pd.DataFrame({"text_1": texts_1[first[keep]], "text_2": texts_2[other[keep]]})


def read_pairs(frame: pd.DataFrame, predictor) -> tuple[np.ndarray, np.ndarray]:
    """``(cosine of the text encoder's vectors, the shipped pair reader's probabilities)``."""
    from mmscore.model.second_head import cosine

    vectors = [predictor.text_encoder.encode(list(frame[c])) for c in ("text_1", "text_2")]
    return cosine(*vectors), predictor.nli_probabilities(list(frame["text_1"]), list(frame["text_2"]))


def calibration(x: np.ndarray, labels: np.ndarray, weights: np.ndarray, mode: str):
    """``(scale, shift)``: per label (``full``, as shipped) or one temperature and no shift (``temperature``)."""
    from scipy.optimize import minimize

    from mmscore.model.second_head import fit_calibration

    if mode == "full":
        return fit_calibration(x, labels, weights)
    onehot = np.eye(x.shape[1])[labels]

    def loss(theta):
        z = x * np.exp(theta[0])
        log_p = z - z.max(1, keepdims=True)
        log_p -= np.log(np.exp(log_p).sum(1, keepdims=True))
        return -(weights * (onehot * log_p).sum(1)).sum() / weights.sum() + 1e-3 * theta[0] ** 2

    t = np.exp(minimize(loss, np.zeros(1), method="L-BFGS-B").x[0])
    return np.full(x.shape[1], t), np.zeros(x.shape[1])


def fit(rows, related_on: str, weighing: str, tweets_cos: np.ndarray):
    from mmscore.model.second_head import SecondHead, cosine, fit_relatedness

    cos = cosine(rows.vectors_1, rows.vectors_2)
    related = rows.related.copy()
    if related_on != "same caption":
        related[rows.labels == 0] = -1.0  # a contradiction may describe another scene: not known
    known = related >= 0
    extra = tweets_cos if related_on.endswith("tweets") else np.zeros(0)
    relatedness = fit_relatedness(np.concatenate([cos[known], extra]), np.concatenate([related[known], 0 * extra]))
    weights = rows.weights
    if weighing == "balanced":
        per_label = np.bincount(rows.labels, weights, minlength=3)
        weights = weights * (weights.sum() / (3 * per_label[rows.labels]))
    mode = "temperature" if weighing == "temperature" else "full"
    return (relatedness, *calibration(SecondHead.inputs_of(cos, rows.nli, relatedness), rows.labels, weights, mode))


def labelled(fitted, cos, nli) -> np.ndarray:
    from mmscore.model.second_head import SecondHead, calibrated

    relatedness, scale, shift = fitted
    return calibrated(SecondHead.inputs_of(cos, nli, relatedness), scale, shift).argmax(1)


def candidate(rows, related_on, weighing, tweets, book) -> dict:
    from sklearn.metrics import accuracy_score, f1_score

    from mmscore.model.second_head import cosine

    (fit_cos, count_cos), count_nli = np.split(tweets[0], 2), np.split(tweets[1], 2)[1]
    cos, pred = cosine(rows.vectors_1, rows.vectors_2), np.zeros(len(rows), np.int64)
    for fold in np.unique(rows.folds):
        test = rows.folds == fold
        pred[test] = labelled(fit(rows.subset(~test), related_on, weighing, fit_cos), cos[test], rows.nli[test])
    final = fit(rows, related_on, weighing, fit_cos)
    f1 = f1_score(rows.labels, pred, average=None)
    return {
        "relatedness fitted on": related_on,
        "calibration": weighing,
        "even-odds cos": round(float(-final[0][1] / final[0][0]), 3),
        "SNLI acc": round(accuracy_score(rows.labels, pred), 4),
        "SNLI macro-F1": round(float(f1.mean()), 4),
        "F1 C/I/N": "/".join(f"{x:.3f}" for x in f1),
        "SNLI unrelated -> NoE": round(float((pred[rows.related == 0] == 2).mean()), 3),
        "tweets unrelated -> NoE": round(float((labelled(final, count_cos, count_nli) == 2).mean()), 3),
        "textbook (check)": round(float((labelled(final, *book[:2]) == book[2]).mean()), 3),
    }


def main() -> None:
    from mmscore.labels import LABEL_INDEX
    from mmscore.model.predictor import DEFAULT_MODEL_DIR, Predictor
    from mmscore.model.second_head import load_second_head

    predictor, rows = Predictor.load(), load_second_head(DEFAULT_MODEL_DIR).rows
    tweets = read_pairs(tweet_cross_pairs(), predictor)
    print("tweet pairs about different things: reader argmax (E, N, C)", np.bincount(tweets[1].argmax(1), minlength=3))
    frame = pd.read_csv(ROOT / "sample_data" / "textbook_pairs.csv", dtype=str)
    book = (*read_pairs(frame, predictor), frame["label"].map(LABEL_INDEX).to_numpy())
    out = [
        candidate(rows, related_on, weighing, tweets, book)
        for related_on in ("same caption", "contradictions left out", "contradictions left out + tweets")
        for weighing in ("balanced", "as the rows come", "temperature")
    ]
    print(pd.DataFrame(out).to_string(index=False))


if __name__ == "__main__":
    main()
