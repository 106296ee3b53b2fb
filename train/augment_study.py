"""Pairs built from the training tweets (``train/tweet_edits.py``), measured kind by kind over seeds.

    .venv/bin/python train/augment_study.py RECIPE[,RECIPE...] [SEEDS] [PER_KIND] [HEADS]
    e.g.  train/augment_study.py none,number,negation,antonym,rewrite,unrelated 5 150 1

A recipe is ``none`` or kinds joined by ``+`` (``number+negation+antonym``). Needs ``../shared/data``.

Per recipe and seed: the built pairs are drawn with that seed, each carries its source row's fold and is
trained on only while that fold is not validated (never validated: the figures are on the real pairs alone);
CV macro-F1 and per-class F1 with offsets and temperature cross-fitted, ECE after calibration, the worst
and mean unrelated-photo flip rate of the folds, and the accuracy on ``sample_data/textbook_pairs.csv`` of
the model fitted on all rows. Then mean ± sd per recipe.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
from study_data import one_seed, print_summary, study_data


def main(recipes: str = "none", seeds: str = "5", per_kind: str = "150", heads: str = "1") -> None:
    from tweet_edits import augmented_pairs

    from mmscore.labels import LABEL_INDEX
    from mmscore.training import (
        PairEmbeddings,
        RowLayout,
        TrainOptions,
        cv_fold_ids,
    )

    data = study_data()
    df, y = data.df, data.y
    for recipe in recipes.split(","):
        rows = []
        for seed in range(int(seeds)):
            started = time.perf_counter()
            options = TrainOptions(seed=seed, heads=int(heads))
            folds = cv_fold_ids(y, options)
            kinds = [] if recipe == "none" else recipe.split("+")
            built = augmented_pairs(df["text_1"], df["text_2"], kinds, int(per_kind), seed)
            if len(built):
                both = PairEmbeddings.concatenate([data.emb, data.embed(built)])
                labels = np.concatenate([y, [LABEL_INDEX[v] for v in built["label"]]])
                layout = RowLayout(np.concatenate([folds, folds[built["source"].to_numpy()]]), validated=len(y))
            else:
                both, labels, layout = data.emb, y, RowLayout(folds)
            row = {"seed": seed, "built": len(built), **one_seed(data, both, labels, options, layout)}
            rows.append({**row, "seconds": round(time.perf_counter() - started)})
            print(json.dumps({"recipe": recipe, **rows[-1]}), flush=True)
        print_summary(recipe, rows)


if __name__ == "__main__":
    main(*sys.argv[1:])
