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
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def main(recipes: str = "lexical-v1:1", seeds: str = "5") -> None:
    from mmscore.encoders import registry
    from mmscore.images.fetcher import build_fetcher
    from mmscore.labels import LABEL_INDEX
    from mmscore.model.pair_features import pair_features
    from mmscore.training import (
        PairEmbeddings,
        TrainOptions,
        cross_validate,
        embed_pairs,
        fit_final,
        head_logits,
        photo_plan,
        read_labelled_pairs,
        tune_offsets,
    )

    df, _ = read_labelled_pairs(DATA / "tweets" / "tweets_trainval.csv")
    y = np.array([LABEL_INDEX[v] for v in df["label"]])
    text, image = registry.text_encoder(), registry.image_encoder()
    fetcher = build_fetcher(offline=True, image_root=DATA / "images" / "tweet_images_lowres")
    emb = embed_pairs(df, DATA / "images" / "tweet_images_lowres", fetcher, text, image)
    plan = photo_plan(emb, DATA / "images" / "mediaeval2016", image, None, lambda _m: None)
    book = pd.read_csv(ROOT / "sample_data" / "textbook_pairs.csv", dtype=str)
    book_y = np.array([LABEL_INDEX[v] for v in book["label"]])
    zeros = np.zeros((len(book), image.dim), np.float32)
    book_emb = PairEmbeddings(text.encode(list(book["text_1"])), text.encode(list(book["text_2"])), zeros, zeros,
                              np.zeros((len(book), 2), np.float32))  # fmt: skip
    results = {}
    for recipe in recipes.split(","):
        features, heads = recipe.split(":")
        emb.pair_features = pair_features(df["text_1"], df["text_2"], features)
        book_emb.pair_features = pair_features(book["text_1"], book["text_2"], features)
        rows = []
        for seed in range(int(seeds)):
            started = time.perf_counter()
            options = TrainOptions(seed=seed, heads=int(heads), pair_features=features)
            metrics, oof = cross_validate(emb, y, "focal", options, None, plan)
            head = fit_final(emb, y, "focal", options, None, plan, lambda _m: None)
            book_pred = (head_logits(head, book_emb) + tune_offsets(oof, y)).argmax(1)
            flips = [f[p]["flip_rate"] for f in metrics["per_fold"] for p in metrics["robustness"]]
            row = {
                "seed": seed,
                "macro_f1": metrics["macro_f1"],
                **{f"f1_{k}": v["f1"] for k, v in metrics["per_class"].items()},
                "ece": metrics["calibration"]["after"]["ece"],
                "flip_max_fold": max(flips),
                "flip_mean": float(np.mean(flips)),
                "textbook_accuracy": float((book_pred == book_y).mean()),
                "seconds": round(time.perf_counter() - started),
            }
            rows.append(row)
            print(json.dumps({"recipe": recipe, **row}), flush=True)
        frame = pd.DataFrame(rows).drop(columns=["seed", "seconds"])
        results[recipe] = {k: f"{frame[k].mean():.3f} ± {frame[k].std(ddof=1):.3f}" for k in frame.columns}
        results[recipe]["min macro_f1"] = f"{frame['macro_f1'].min():.3f}"
        print(json.dumps({"recipe": recipe, "summary": results[recipe]}), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
