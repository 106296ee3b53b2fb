"""Does the second head read a pair better in both directions? Measured on real pairs only:

- the SNLI rows the shipped second head keeps (its reader's dev pairs and pairs of two captions), each labelled by
  a mapping fitted without its fold (a premise's pairs held out together);
- the 1,260 real tweet pairs, written apart from the project and never rows of the second head, every one labelled
  by the second head with its mapping fitted on all its SNLI rows (how the head carries over to pairs it was not
  fitted on; their Implies pairs are mostly rewordings of one post).

    .venv/bin/python train/direction_study.py

Needs ``../shared/data``. Candidates: how the reader's forward reading ``p`` (text_1 -> text_2, as shipped) and
backward reading ``q`` (text_2 -> text_1) become the three probabilities the mapping reads. The textbook pairs
(ours) are printed as a check; they choose nothing.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
from study_data import DATA, ROOT

CACHE = ROOT.parent / "direction_study_cache.npz"


def combined(p: np.ndarray, q: np.ndarray, how: str) -> np.ndarray:
    """``(n, 3)`` entailment, neutral, contradiction from the forward and backward readings."""
    if how == "forward":
        return p
    if how == "mean":
        return (p + q) / 2
    if how == "contradiction both ways":
        c = (p[:, 2] + q[:, 2]) / 2
        rest = (1 - c) / np.clip(p[:, 0] + p[:, 1], 1e-9, None)
        return np.stack([p[:, 0] * rest, p[:, 1] * rest, c], 1)
    if how == "entailment either way":
        e = np.maximum(p[:, 0], q[:, 0])
        rest = (1 - e) / np.clip(p[:, 1] + p[:, 2], 1e-9, None)
        return np.stack([e, p[:, 1] * rest, p[:, 2] * rest], 1)
    raise ValueError(how)


def readings(predictor) -> dict:
    """Vectors' cosine and both readings of the SNLI rows, the tweets and the textbook pairs (cached)."""
    if CACHE.exists():
        with np.load(CACHE) as z:
            return dict(z)
    from mmscore.labels import LABEL_INDEX
    from mmscore.model.second_head import cosine
    from mmscore.training import read_labelled_pairs
    from mmscore.training.second_head import nli_frame

    frames = {
        "snli": nli_frame(DATA / "snli" / "snli_1.0_train_100k.parquet", 0.02),
        "tweets": read_labelled_pairs(DATA / "tweets" / "tweets_trainval.csv")[0],
        "book": pd.read_csv(ROOT / "sample_data" / "textbook_pairs.csv", dtype=str),
    }
    out = {}
    for name, frame in frames.items():
        t1, t2 = list(frame["text_1"]), list(frame["text_2"])
        print(f"reading {name}: {len(t1)} pairs, both ways", flush=True)
        out[f"{name}_cos"] = cosine(predictor.text_encoder.encode(t1), predictor.text_encoder.encode(t2))
        out[f"{name}_p"] = predictor.nli_probabilities(t1, t2)
        out[f"{name}_q"] = predictor.nli_probabilities(t2, t1)
        if name != "snli":
            out[f"{name}_y"] = frame["label"].map(LABEL_INDEX).to_numpy()
    np.savez(CACHE, **out)
    return out


def candidate(head, r: dict, how: str) -> dict:
    """The shipped second head with its SNLI rows read ``how``: held-out figures on them, and the tweets labelled."""
    from sklearn.metrics import accuracy_score, f1_score

    from mmscore.model.second_head import SecondHead, calibrated

    rows = replace(head.rows, nli=combined(r["snli_p"], r["snli_q"], how).astype(np.float32))
    pred = replace(head, rows=rows).held_out_predictions()
    relatedness, scale, shift = SecondHead.fit_mapping(rows)

    def label(name):
        x = SecondHead.inputs_of(r[f"{name}_cos"], combined(r[f"{name}_p"], r[f"{name}_q"], how), relatedness)
        return calibrated(x, scale, shift).argmax(1)

    tweets, f1 = label("tweets"), f1_score(rows.labels, pred, average=None)
    tf1 = f1_score(r["tweets_y"], tweets, average=None)
    return {
        "reading": how,
        "SNLI acc": round(accuracy_score(rows.labels, pred), 4),
        "SNLI macro-F1": round(float(f1.mean()), 4),
        "SNLI F1 C/I/N": "/".join(f"{x:.3f}" for x in f1),
        "tweets macro-F1": round(float(tf1.mean()), 4),
        "tweets F1 C/I/N": "/".join(f"{x:.3f}" for x in tf1),
        "textbook (check)": round(float((label("book") == r["book_y"]).mean()), 3),
    }


def main() -> None:
    from mmscore.model.predictor import DEFAULT_MODEL_DIR, Predictor
    from mmscore.model.second_head import load_second_head

    predictor, head = Predictor.load(), load_second_head(DEFAULT_MODEL_DIR)
    r = readings(predictor)
    print("forward reading as kept by the head, largest difference:", float(np.abs(r["snli_p"] - head.rows.nli).max()))
    hows = ("forward", "mean", "contradiction both ways", "entailment either way")
    print(pd.DataFrame([candidate(head, r, how) for how in hows]).to_string(index=False))


if __name__ == "__main__":
    main()
