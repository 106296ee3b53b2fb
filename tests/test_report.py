import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from mmscore.errors import InputError
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


def test_calibration_against_gold_matches_a_hand_computation(tmp_path):
    # every row has max probability 0.8; 4 of 6 are right -> ECE |0.8 - 4/6|, log-loss from the gold's probability
    report = build_report(_scored(tmp_path / "s.parquet", GOLD, PRED), chunk_rows=4)
    c = report.calibration
    assert c["ece"] == pytest.approx(abs(0.8 - 4 / 6), abs=1e-6)
    assert c["log_loss"] == pytest.approx(-(4 * np.log(0.8) + 2 * np.log(0.1)) / 6, rel=1e-5)
    assert c["reliability"][8]["rows"] == 6 and c["reliability"][8]["accuracy"] == pytest.approx(4 / 6)
    assert report.to_json()["calibration"]["ece"] == pytest.approx(c["ece"])


def _graded(path, confidences):
    """A scored file whose rows have the given max probabilities (Implies), with ids and texts."""
    top = np.array(confidences, np.float32)
    rest = (1 - top) / 2
    df = pd.DataFrame(
        {
            "id_1": [f"{i:019d}" for i in range(len(top))],
            "text_1": [f"first {i}" for i in range(len(top))],
            "text_2": [f"second {i}" for i in range(len(top))],
            "image_1": ["https://img.example/a.jpg"] * len(top),
            "pred_label": ["Implies"] * len(top),
            "prob_contradictory": rest,
            "prob_implies": top,
            "prob_noentailment": rest,
            "image_1_status": ["ok"] * len(top),
        }
    )
    df.to_parquet(path)
    return path


CONFIDENCES = [0.9, 0.41, 0.55, 0.95, 0.35, 0.59, 0.7, 0.41]


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_review_queue_holds_the_uncertain_rows_least_confident_first(tmp_path, suffix):
    from mmscore.report import write_review_queue

    scored = _graded(tmp_path / "s.parquet", CONFIDENCES)
    queue = write_review_queue(scored, tmp_path / f"q{suffix}", below=0.6, chunk_rows=3)
    got = (
        pd.read_csv(tmp_path / f"q{suffix}", dtype=str) if suffix == ".csv" else pd.read_parquet(tmp_path / "q.parquet")
    )
    assert queue.rows == 5 and queue.total == 8
    # least confident first; equal confidence keeps file order; ids stay exact strings
    assert list(got["id_1"]) == [f"{i:019d}" for i in (4, 1, 7, 2, 5)]
    assert list(got["text_2"]) == [f"second {i}" for i in (4, 1, 7, 2, 5)]
    assert {"image_1", "pred_label", "prob_implies", "confidence"} <= set(got.columns)


def test_review_queue_top_n_and_the_cli_summary(tmp_path):
    scored = _graded(tmp_path / "s.parquet", CONFIDENCES)
    run = subprocess.run(
        [sys.executable, "-m", "mmscore.cli", "report", str(scored), "--review", str(tmp_path / "q.csv"), "--top", "2"],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    assert list(pd.read_csv(tmp_path / "q.csv", dtype=str)["id_1"]) == [f"{i:019d}" for i in (4, 1)]
    assert "review queue: 2 rows (25.0% of 8" in " ".join(run.stdout.split())
    # the report's low-confidence line uses the review threshold
    run = subprocess.run(
        [sys.executable, "-m", "mmscore.cli", "report", str(scored), "--below", "0.5", "--json"],
        capture_output=True,
        text=True,
    )
    doc = json.loads(run.stdout)
    assert doc["low_confidence_threshold"] == 0.5 and doc["low_confidence_rows"] == 3


def test_review_queue_refuses_an_unknown_extension(tmp_path):
    from mmscore.report import write_review_queue

    with pytest.raises(InputError, match="must be a .csv or .parquet"):
        write_review_queue(_graded(tmp_path / "s.parquet", CONFIDENCES), tmp_path / "q.txt")


def test_an_empty_review_queue_is_written_with_its_columns(tmp_path):
    from mmscore.report import write_review_queue

    queue = write_review_queue(_graded(tmp_path / "s.parquet", CONFIDENCES), tmp_path / "q.csv", below=0.2)
    got = pd.read_csv(tmp_path / "q.csv")
    assert queue.rows == 0 and len(got) == 0 and {"id_1", "text_1", "confidence"} <= set(got.columns)
