"""How much a user's labels move a model: extend a model with invented plain-language pairs and measure accuracy
on held-back pairs of the same kind, and what happened to the main head (kept, or retrained: base-row CV).

    .venv/bin/python train/extend_study.py OUT_DIR LABELLED [WEIGHT ...]

LABELLED is
- ``halves``: the shipped model extended with ``sample_data/textbook_pairs.csv`` split in halves per label
  (5 per label labelled, the other 15 tested), then the halves swapped, so all 30 are tested once;
- ``plain:10,20,40``: a base *without* a second head (the shipped model's main head, reference and rows, as
  the model was before plain pairs were added) extended with the first 10/20/40 scenes of
  ``sample_data/plain_pairs.csv`` (one pair per label each); all 30 textbook pairs tested (written at another
  time, about other scenes).

Each count and weight trains one extended model (with the shipped photos recipe, ``--photos``, when
``../shared/data`` is there: used only if some new rows are in the base's domain and the main head is
retrained). Prints one line each.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ROOT.parent / "shared" / "data" / "images" / "mediaeval2016"
SHIPPED = ROOT / "mmscore" / "default_model"


def without_second_head(out: Path) -> Path:
    """The shipped model as it was before its second head: the same main head, reference and kept rows."""
    base = out / "base-without-second-head"
    shutil.rmtree(base, ignore_errors=True)
    shutil.copytree(SHIPPED, base, ignore=shutil.ignore_patterns("out_of_domain.npz"))
    card = json.loads((base / "model_card.json").read_text())
    card["out_of_domain"] = {}
    (base / "model_card.json").write_text(json.dumps(card, indent=2))
    return base


def splits(out: Path, labelled: str) -> list[tuple[str, Path, list[tuple[Path, Path]]]]:
    """``(name, base model, [(labelled file, test file), ...])`` per labelled set asked for."""
    book = pd.read_csv(ROOT / "sample_data" / "textbook_pairs.csv", dtype=str)
    if labelled == "halves":
        position = book.groupby("label").cumcount()
        runs = []
        for half in (0, 1):
            labelled_file, test = out / f"labelled{half}.csv", out / f"test{half}.csv"
            book[position % 2 == half].to_csv(labelled_file, index=False)
            book[position % 2 != half].to_csv(test, index=False)
            runs.append((labelled_file, test))
        return [("textbook halves (5 per label), shipped model", SHIPPED, runs)]
    test = out / "textbook.csv"
    book.to_csv(test, index=False)
    plain = pd.read_csv(ROOT / "sample_data" / "plain_pairs.csv", dtype=str)
    base = without_second_head(out)
    found = []
    for count in map(int, labelled.removeprefix("plain:").split(",")):
        path = out / f"plain{count}.csv"
        plain[plain.groupby("label").cumcount() < count].to_csv(path, index=False)
        found.append((f"plain pairs, {count} per label, base without a second head", base, [(path, test)]))
    return found


def main(out: str, labelled: str = "halves", *weights: str) -> None:
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, base, runs in splits(out_dir, labelled):
        print(f"{name}; base model: test accuracy {accuracy(base, runs):.3f}", flush=True)
        for weight in map(int, weights or ("10",)):
            extend(out_dir / f"{runs[0][0].stem}-weight{weight}", base, runs, weight, name)


def accuracy(model: Path, runs: list[tuple[Path, Path]], models: list[Path] | None = None) -> float:
    """Accuracy over every run's test file (scored by ``models[i]``, or ``model``)."""
    import mmscore

    right = total = 0
    for i, (_labelled, test) in enumerate(runs):
        truth = pd.read_csv(test, dtype=str)
        got = mmscore.Scorer(models[i] if models else model, precision="float32").score_frame(truth)
        right += int((got["pred_label"] == truth["label"]).sum())
        total += len(truth)
    return right / total


def extend(model: Path, base: Path, runs: list[tuple[Path, Path]], weight: int, name: str) -> None:
    """Extended models (one per run): test accuracy, where the new rows went, and the base-row CV when the
    main head was retrained."""
    from mmscore.training import train

    photos = PHOTOS if PHOTOS.is_dir() else None
    models, lines = [], []
    for i, (labelled, _test) in enumerate(runs):
        out = model.with_name(f"{model.name}-{i}")
        result = train(labelled, out, base=str(base), new_weight=weight, photos=photos)
        groups = result.per_loss[result.chosen_loss].get("groups", {})
        lineage = result.card.base
        lines.append({
            "main_head_rows": lineage["new_rows_main_head"], "second_head_rows": lineage["new_rows_second_head"],
            "cv_macro_f1": {group: round(g["macro_f1"], 3) for group, g in groups.items()} or "main head unchanged",
            "seconds": round(result.seconds),
        })  # fmt: skip
        models.append(out)
    line = {"labelled": name, "weight": weight, "test_accuracy": round(accuracy(base, runs, models), 3)}
    print(json.dumps({**line, "runs": lines}), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
