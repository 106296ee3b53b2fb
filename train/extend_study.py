"""How much a user's labels move a model: extend the shipped model with invented plain-language pairs and
measure accuracy on held-back pairs of the same kind, and CV macro-F1 on the real tweet rows it keeps.

    .venv/bin/python train/extend_study.py OUT_DIR LABELLED [WEIGHT ...]

LABELLED is ``halves`` (``sample_data/textbook_pairs.csv`` split in halves per label: 15 labelled, 15 tested)
or ``plain:10,20,40`` (the first 10, 20, 40 scenes of ``sample_data/plain_pairs.csv``, one pair per label
each, labelled; all 30 textbook pairs tested: written at another time, about other things). Each count and
weight trains one extended model with the shipped model's photos recipe (``--photos``) when
``../shared/data`` is there. Prints one line each: test accuracy, per-label test recall, CV macro-F1 of the
base rows and of the new rows.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ROOT.parent / "shared" / "data" / "images" / "mediaeval2016"


def splits(out: Path, labelled: str) -> list[tuple[str, Path, Path]]:
    """``(name, labelled file, test file)`` per labelled set asked for."""
    book = pd.read_csv(ROOT / "sample_data" / "textbook_pairs.csv", dtype=str)
    test = out / "test.csv"
    if labelled == "halves":
        position = book.groupby("label").cumcount()
        book[position % 2 == 0].to_csv(out / "labelled.csv", index=False)
        book[position % 2 == 1].to_csv(test, index=False)
        return [("textbook halves (5 per label)", out / "labelled.csv", test)]
    book.to_csv(test, index=False)
    plain = pd.read_csv(ROOT / "sample_data" / "plain_pairs.csv", dtype=str)
    found = []
    for count in map(int, labelled.removeprefix("plain:").split(",")):
        path = out / f"plain{count}.csv"
        plain[plain.groupby("label").cumcount() < count].to_csv(path, index=False)
        found.append((f"plain pairs, {count} per label", path, test))
    return found


def main(out: str, labelled: str = "halves", *weights: str) -> None:
    import mmscore

    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, labelled_file, test in splits(out_dir, labelled):
        truth = pd.read_csv(test, dtype=str)
        base = mmscore.Scorer(precision="float32").score_frame(truth)
        print(f"{name}; base model: test accuracy {(base['pred_label'] == truth['label']).mean():.3f}", flush=True)
        for weight in map(int, weights or ("10",)):
            extend(out_dir / f"{labelled_file.stem}-weight{weight}", labelled_file, truth, weight, name)


def extend(model: Path, labelled: Path, truth: pd.DataFrame, weight: int, name: str) -> None:
    """One extended model: its test accuracy and recall per label, and the CV macro-F1 of base and new rows."""
    import mmscore
    from mmscore.training import train

    photos = PHOTOS if PHOTOS.is_dir() else None
    result = train(labelled, model, base="default", new_weight=weight, photos=photos)
    got = mmscore.Scorer(model, precision="float32").score_frame(truth)
    right = got["pred_label"] == truth["label"]
    recall = {label: round(float(right[truth["label"] == label].mean()), 2) for label in sorted(set(truth["label"]))}
    groups = result.per_loss[result.chosen_loss]["groups"]
    facts = {group: round(g["macro_f1"], 3) for group, g in groups.items()}
    line = {"labelled": name, "weight": weight, "test_accuracy": round(float(right.mean()), 3), "recall": recall}
    print(json.dumps({**line, "cv_macro_f1": facts, "seconds": round(result.seconds)}), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
