"""Model figures over seeds, not one draw: the shipped recipe cross-validated with several seeds (each seed
draws other folds, initialisations and photo assignments), with one head or several averaged.

    .venv/bin/python train/seed_study.py RECIPE[,RECIPE...] [SEEDS]   e.g.  lexical-v1:1,lexical-v2:1,lexical-v1:3 5

A recipe is PAIR_FEATURES:HEADS (the lexical feature set, and how many seed heads are averaged).

Needs ``../shared/data``. Per recipe and seed: CV macro-F1 and per-class F1 (offsets and temperature
cross-fitted), ECE after calibration, the unrelated-photo flip rate of every fold (two probes), and the
accuracy on ``sample_data/textbook_pairs.csv`` of the model fitted on all rows. Then mean ± sd per recipe.
"""

from __future__ import annotations

import json
import sys
import time

from study_data import one_seed, print_summary, study_data


def main(recipes: str = "lexical-v1:1", seeds: str = "5") -> None:
    from mmscore.model.preprocessor import PairPreprocessor
    from mmscore.training import TrainOptions

    data = study_data()
    df, book, y = data.df, data.book, data.y
    for recipe in recipes.split(","):
        features, heads = recipe.split(":")
        lexical = PairPreprocessor(features)
        data.emb.pair_features = lexical.pair_features(df["text_1"], df["text_2"])
        data.book_emb.pair_features = lexical.pair_features(book["text_1"], book["text_2"])
        rows = []
        for seed in range(int(seeds)):
            started = time.perf_counter()
            options = TrainOptions(seed=seed, heads=int(heads), pair_features=features)
            row = {"seed": seed, **one_seed(data, data.emb, y, options)}
            rows.append({**row, "seconds": round(time.perf_counter() - started)})
            print(json.dumps({"recipe": recipe, **rows[-1]}), flush=True)
        print_summary(recipe, rows)


if __name__ == "__main__":
    main(*sys.argv[1:])
