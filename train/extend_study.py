"""How much a user's labels move a model: extend the shipped model with invented plain-language pairs and
measure accuracy on held-back pairs of the same kind, and CV macro-F1 on the real tweet rows it keeps.

    .venv/bin/python train/extend_study.py OUT_DIR [WEIGHT ...]

Labelled part / test part: ``sample_data/textbook_pairs.csv`` split in halves per label (15 / 15). Each weight
trains one extended model with the shipped model's photos recipe (``--photos``) when ``../shared/data`` is there.
Prints one line per weight: test accuracy, per-label test recall, CV macro-F1 of the base rows and of the new rows.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ROOT.parent / "shared" / "data" / "images" / "mediaeval2016"


def halves(out: Path) -> tuple[Path, Path]:
    pairs = pd.read_csv(ROOT / "sample_data" / "textbook_pairs.csv", dtype=str)
    position = pairs.groupby("label").cumcount()
    labelled, test = out / "labelled.csv", out / "test.csv"
    pairs[position % 2 == 0].to_csv(labelled, index=False)
    pairs[position % 2 == 1].to_csv(test, index=False)
    return labelled, test


def main(out: str, *weights: str) -> None:
    import mmscore
    from mmscore.training import train

    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    labelled, test = halves(out_dir)
    truth = pd.read_csv(test, dtype=str)
    base = mmscore.Scorer(precision="float32").score_frame(truth)
    print(f"base model: test accuracy {(base['pred_label'] == truth['label']).mean():.3f}", flush=True)
    for weight in map(int, weights or ("10",)):
        model = out_dir / f"weight{weight}"
        photos = PHOTOS if PHOTOS.is_dir() else None
        result = train(labelled, model, base="default", new_weight=weight, photos=photos)
        got = mmscore.Scorer(model, precision="float32").score_frame(truth)
        right = got["pred_label"] == truth["label"]
        labels = sorted(set(truth["label"]))
        recall = {label: round(float(right[truth["label"] == label].mean()), 2) for label in labels}
        groups = result.per_loss[result.chosen_loss]["groups"]
        facts = {name: round(g["macro_f1"], 3) for name, g in groups.items()}
        print(json.dumps({"weight": weight, "test_accuracy": round(float(right.mean()), 3), "recall": recall,
                          "cv_macro_f1": facts, "seconds": round(result.seconds)}), flush=True)  # fmt: skip


if __name__ == "__main__":
    main(*sys.argv[1:])
