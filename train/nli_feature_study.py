"""Does the main head (tweets) gain from the pair reader's reading? The shipped recipe cross-validated over seeds,
its lexical pair features alone against the same features plus the pair reader's three log-probabilities
(entailment, neutral, contradiction) of each pair.

    .venv/bin/python train/nli_feature_study.py [SEEDS] [HEADS]     e.g.  5 1

Needs ``../shared/data``. Per recipe and seed: CV macro-F1 and per-class F1 (offsets and temperature
cross-fitted), ECE, the unrelated-photo flip rate of every fold, and the textbook accuracy of the model fitted on
all rows (the main head alone); then mean ± sd per recipe.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
from study_data import one_seed, print_summary, study_data


def reader_log_probs(frame) -> np.ndarray:
    import mmscore

    probs = mmscore.nli_probabilities(list(frame["text_1"].fillna("")), list(frame["text_2"].fillna("")))
    return np.log(np.clip(probs, 1e-6, 1.0)).astype(np.float32)


def main(seeds: str = "5", heads: str = "1") -> None:
    from mmscore.training import TrainOptions

    data = study_data()
    lexical, book_lexical = data.emb.pair_features, data.book_emb.pair_features
    started = time.perf_counter()
    nli, book_nli = reader_log_probs(data.df), reader_log_probs(data.book)
    print(f"pair reader over {len(data.df) + len(data.book)} pairs: {time.perf_counter() - started:.0f} s", flush=True)
    for recipe, extra, book_extra in (("lexical-v1", None, None), ("lexical-v1+nli", nli, book_nli)):
        data.emb.pair_features = lexical if extra is None else np.hstack([lexical, extra])
        data.book_emb.pair_features = book_lexical if book_extra is None else np.hstack([book_lexical, book_extra])
        rows = []
        for seed in range(int(seeds)):
            started = time.perf_counter()
            options = TrainOptions(seed=seed, heads=int(heads), pair_features="lexical-v1")
            row = {"seed": seed, **one_seed(data, data.emb, data.y, options)}
            rows.append({**row, "seconds": round(time.perf_counter() - started)})
            print(json.dumps({"recipe": recipe, **rows[-1]}), flush=True)
        print_summary(recipe, rows)


if __name__ == "__main__":
    main(*sys.argv[1:])
