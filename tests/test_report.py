import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from mmscore.io.pairs_reader import InputError
from mmscore.labels import PROB_COLUMNS
from mmscore.report import build_report


def _scored(path, gold, pred, extra_gold_column="label"):
    probs = {"Contradictory": [0.8, 0.1, 0.1], "Implies": [0.1, 0.8, 0.1], "NoEntailment": [0.1, 0.1, 0.8]}
    rows = np.array([probs[p] for p in pred], np.float32)
    df = pd.DataFrame({"pred_label": pred, **{c: rows[:, i] for i, c in enumerate(PROB_COLUMNS)}})
    df["image_1_status"] = ["ok", "missing", "http_404", "ok", "ok", "ok"][: len(pred)]
    if gold is not None:
        df[extra_gold_column] = gold
    df.to_parquet(path)
    return path


GOLD = ["Contradictory", "Contradictory", "Implies", "Implies", "NoEntailment", "NoEntailment"]
PRED = ["Contradictory", "Implies", "Implies", "Implies", "NoEntailment", "Contradictory"]


def test_metrics_match_a_hand_computed_example(tmp_path):
    # Contradictory: tp 1, fp 1, fn 1 -> F1 0.5; Implies: tp 2, fp 1, fn 0 -> P 2/3, R 1, F1 0.8;
    # NoEntailment: tp 1, fp 0, fn 1 -> P 1, R 0.5, F1 2/3. Macro-F1 = (0.5 + 0.8 + 2/3) / 3.
    report = build_report(_scored(tmp_path / "s.parquet", GOLD, PRED), chunk_rows=4)
    m = report.metrics
    assert m["per_class"]["Implies"]["precision"] == pytest.approx(2 / 3)
    assert m["per_class"]["NoEntailment"]["recall"] == pytest.approx(0.5)
    assert m["macro_f1"] == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["confusion"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert report.rows == 6 and report.predicted["Implies"] == 3


def test_json_round_trips_and_plot_is_a_png(tmp_path):
    path = _scored(tmp_path / "s.parquet", GOLD, PRED)
    run = subprocess.run(
        [sys.executable, "-m", "mmscore.cli", "report", str(path), "--json", "--plot", str(tmp_path / "r.png")],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    doc = json.loads(run.stdout)
    assert doc["metrics"]["macro_f1"] == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    assert doc["predicted_counts"] == {"Contradictory": 2, "Implies": 3, "NoEntailment": 1}
    with Image.open(tmp_path / "r.png") as im:
        assert im.format == "PNG" and im.size[0] >= 600 and im.size[1] >= 300


def test_without_gold_the_per_class_section_is_omitted(tmp_path):
    report = build_report(_scored(tmp_path / "s.parquet", None, PRED))
    assert report.metrics is None and "no gold column" in report.gold_missing_reason


def test_gold_outside_the_labels_is_counted_not_fatal(tmp_path):
    gold = [*GOLD[:5], "Unsure"]
    report = build_report(_scored(tmp_path / "s.parquet", gold, PRED))
    assert report.gold_outside_labels == {"Unsure": 1}
    assert sum(report.metrics["per_class"][k]["support"] for k in report.metrics["per_class"]) == 5


def test_a_file_not_from_mmscore_is_refused(tmp_path):
    pd.DataFrame({"text_1": ["a"]}).to_parquet(tmp_path / "x.parquet")
    with pytest.raises(InputError, match="not written by `mmscore score`"):
        build_report(tmp_path / "x.parquet")
