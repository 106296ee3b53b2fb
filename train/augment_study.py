"""Pairs built from the training tweets (``mmscore.training.augmentation``), measured kind by kind over seeds.

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
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def main(recipes: str = "none", seeds: str = "5", per_kind: str = "150", heads: str = "1") -> None:
    from mmscore.encoders import registry
    from mmscore.images.fetcher import build_fetcher
    from mmscore.labels import LABEL_INDEX
    from mmscore.model.preprocessor import PairPreprocessor
    from mmscore.training import (
        PairEmbeddings,
        RowLayout,
        TrainOptions,
        cross_validate,
        cv_fold_ids,
        embed_pairs,
        fit_final,
        head_logits,
        photo_plan,
        read_labelled_pairs,
        tune_offsets,
    )
    from mmscore.training.augmentation import augmented_pairs

    df, _ = read_labelled_pairs(DATA / "tweets" / "tweets_trainval.csv")
    y = np.array([LABEL_INDEX[v] for v in df["label"]])
    text, image = registry.text_encoder(), registry.image_encoder()
    fetcher = build_fetcher(offline=True, image_root=DATA / "images" / "tweet_images_lowres")
    emb = embed_pairs(df, DATA / "images" / "tweet_images_lowres", fetcher, text, image)
    lexical = PairPreprocessor("lexical-v1")
    emb.pair_features = lexical.pair_features(df["text_1"], df["text_2"])
    plan = photo_plan(emb, DATA / "images" / "mediaeval2016", image, None, lambda _m: None)
    book = pd.read_csv(ROOT / "sample_data" / "textbook_pairs.csv", dtype=str)
    book_y = np.array([LABEL_INDEX[v] for v in book["label"]])
    book_emb = embed_pairs(book, None, fetcher, text, image)
    book_emb.pair_features = lexical.pair_features(book["text_1"], book["text_2"])
    for recipe in recipes.split(","):
        rows = []
        for seed in range(int(seeds)):
            started = time.perf_counter()
            options = TrainOptions(seed=seed, heads=int(heads))
            folds = cv_fold_ids(y, options)
            kinds = [] if recipe == "none" else recipe.split("+")
            built = augmented_pairs(df["text_1"], df["text_2"], kinds, int(per_kind), seed)
            if len(built):
                extra = embed_pairs(built, None, fetcher, text, image)
                extra.pair_features = lexical.pair_features(built["text_1"], built["text_2"])
                both = PairEmbeddings.concatenate([emb, extra])
                labels = np.concatenate([y, [LABEL_INDEX[v] for v in built["label"]]])
                layout = RowLayout(np.concatenate([folds, folds[built["source"].to_numpy()]]), validated=len(y))
            else:
                both, labels, layout = emb, y, RowLayout(folds)
            metrics, oof = cross_validate(both, labels, "focal", options, None, plan, layout)
            head = fit_final(both, labels, "focal", options, None, plan, lambda _m: None, layout)
            book_pred = (head_logits(head, book_emb) + tune_offsets(oof, y)).argmax(1)
            flips = [f[p]["flip_rate"] for f in metrics["per_fold"] for p in metrics["robustness"]]
            row = {
                "seed": seed,
                "built": len(built),
                "macro_f1": metrics["macro_f1"],
                **{f"f1_{k}": v["f1"] for k, v in metrics["per_class"].items()},
                "ece": metrics["calibration"]["after"]["ece"],
                "flip_max_fold": max(flips),
                "flip_mean": float(np.mean(flips)),
                "textbook_accuracy": float((book_pred == book_y).mean()),
                "textbook_per_label": {
                    label: float((book_pred[book_y == i] == i).mean()) for label, i in LABEL_INDEX.items()
                },
                "seconds": round(time.perf_counter() - started),
            }
            rows.append(row)
            print(json.dumps({"recipe": recipe, **row}), flush=True)
        frame = pd.DataFrame(rows).drop(columns=["seed", "seconds", "textbook_per_label"])
        summary = {k: f"{frame[k].mean():.3f} ± {frame[k].std(ddof=1):.3f}" for k in frame.columns}
        summary["min macro_f1"] = f"{frame['macro_f1'].min():.3f}"
        print(json.dumps({"recipe": recipe, "summary": summary}), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
