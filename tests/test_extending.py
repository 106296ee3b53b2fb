"""`mmscore train NEW --base MODEL`: a model keeps its training rows (vectors, never texts), a user's labelled
rows extend it, the review queue's label column closes the loop, and a base that cannot be extended is refused."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mmscore.errors import InputError, InvalidModelError
from mmscore.labels import LABELS

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"


def _pairs(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    pd.DataFrame(rows, columns=["text_1", "text_2", "label"]).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A small model trained from scratch on invented tweet-like rows (3 folds, few epochs)."""
    from mmscore.training import train

    root = tmp_path_factory.mktemp("base")
    rows = []
    for i in range(8):
        post = f"Update {i}: {10 + i} new cases today #news"
        rows.append((post, f"{10 + i} new cases reported today", "Implies"))
        rows.append((post, f"Update {i}: {40 + i} new cases today", "Contradictory"))
        rows.append((f"Game {i} starts at {i + 1}pm #sports", f"Recipe {i}: bake for {20 + i} minutes", "NoEntailment"))
    train(_pairs(root / "base.csv", rows), root / "model", folds=3, epochs=5, heads=1, offline=True)
    return root / "model"


def test_a_trained_model_keeps_its_rows_as_vectors_not_texts(base):
    from mmscore.model.training_rows import TRAINING_ROWS_FILE, load_training_rows

    rows = load_training_rows(base)
    assert len(rows) == 24 and sorted(np.bincount(rows.labels).tolist()) == [8, 8, 8]
    assert rows.text_1.shape == (24, 384) and np.allclose(np.linalg.norm(rows.text_1, axis=1), 1, atol=1e-2)
    assert set(np.unique(rows.folds)) == {0, 1, 2} and rows.pair_features.shape[1] > 0
    with np.load(base / TRAINING_ROWS_FILE, allow_pickle=False) as stored:  # no text is stored: numbers only
        assert {stored[name].dtype.kind for name in stored.files} <= set("fiub"), stored.files


def test_new_labels_extend_the_base_and_the_new_rows_are_learned(base, tmp_path):
    """Plain-language pairs the base has never seen: after extending, the model gets the rows it was given
    right far more often than the base; the rows out of the base's domain went to the second head, and the card
    records the lineage."""
    import mmscore
    from mmscore.model.card import ModelCard
    from mmscore.model.second_head import load_second_head
    from mmscore.model.training_rows import load_training_rows
    from mmscore.training import train

    textbook = pd.read_csv(SAMPLE / "textbook_pairs.csv", dtype=str)
    new = tmp_path / "new.csv"
    textbook.to_csv(new, index=False)
    before = mmscore.Scorer(base, precision="float32").score_frame(textbook)
    train(new, tmp_path / "extended", base=str(base), new_weight=10, folds=3, epochs=5, heads=1)
    after = mmscore.Scorer(tmp_path / "extended", precision="float32").score_frame(textbook)
    hits_before = (before["pred_label"] == textbook["label"]).mean()
    hits_after = (after["pred_label"] == textbook["label"]).mean()
    # The second head maps the pair reader's reading with a scale and a shift per label: new rows teach it their
    # label balance and how far to trust each reading, not the rows themselves (the earlier head over |u - v|
    # reached 0.7 here by learning the rows).
    assert hits_after >= 0.6 and hits_after > hits_before + 0.2, (hits_before, hits_after)
    card = ModelCard.load(tmp_path / "extended")
    lineage = card.base
    assert lineage["base_rows"] == 24 and lineage["new_rows"] == 30 and lineage["new_weight"] == 10
    assert lineage["new_rows_main_head"] + lineage["new_rows_second_head"] == 30
    assert lineage["new_rows_second_head"] >= 20  # plain sentences are far from '#news' posts
    assert card.training_data_sha256 != ModelCard.load(base).training_data_sha256
    second = load_second_head(tmp_path / "extended")
    assert len(second.rows) == lineage["new_rows_second_head"] and set(second.rows.weights) == {10.0}
    kept = 24 + lineage["new_rows_main_head"]
    assert card.training_rows == kept and len(load_training_rows(tmp_path / "extended")) == kept  # extendable again


def test_rows_out_of_the_base_domain_leave_its_main_head_as_it_was(base, tmp_path):
    """Every new row out of domain: the main head, its reference and its CV figures are the base's, byte for
    byte; only the second head is new. (Base-row figures cannot move when the base rows' head does not.)"""
    from mmscore.encoders import registry
    from mmscore.model.card import ModelCard
    from mmscore.model.domain import load_domain
    from mmscore.training import train

    plain = pd.read_csv(SAMPLE / "plain_pairs.csv", dtype=str).head(36)
    text = registry.text_encoder()
    texts = list(plain["text_1"]), list(plain["text_2"])
    _, inside = load_domain(base).score(text.encode(texts[0]), text.encode(texts[1]), *texts)
    outside = plain[~inside]
    assert len(outside) >= 24 and outside["label"].nunique() == 3
    outside.to_csv(tmp_path / "new.csv", index=False)
    result = train(tmp_path / "new.csv", tmp_path / "extended", base=str(base), folds=3, epochs=5, heads=1)
    card = ModelCard.load(tmp_path / "extended")
    assert card.base["new_rows_second_head"] == len(outside) and card.base["new_rows_main_head"] == 0
    for name in ("head.keras", "domain.npz", "training_rows.npz"):
        assert (tmp_path / "extended" / name).read_bytes() == (base / name).read_bytes(), name
    assert card.cv_metrics == ModelCard.load(base).cv_metrics and result.per_loss == card.cv_metrics["per_loss"]
    assert card.out_of_domain["rows"] == len(outside)


def test_rows_like_the_base_extend_its_main_head_and_cv_reports_both_groups(base, tmp_path):
    from mmscore.model.card import ModelCard
    from mmscore.training import train

    rows = []
    for i in range(8, 12):
        post = f"Update {i}: {10 + i} new cases today #news"
        rows.append((post, f"{10 + i} new cases reported today", "Implies"))
        rows.append((post, f"Update {i}: {40 + i} new cases today", "Contradictory"))
        rows.append((f"Game {i} starts at {i + 1}pm #sports", f"Recipe {i}: bake for {20 + i} minutes", "NoEntailment"))
    result = train(
        _pairs(tmp_path / "new.csv", rows), tmp_path / "extended", base=str(base), folds=3, epochs=5, heads=1
    )
    card = ModelCard.load(tmp_path / "extended")
    inside = card.base["new_rows_main_head"]
    assert inside >= 9, card.base  # posts like the base's are in its domain
    groups = result.per_loss["focal"]["groups"]
    assert {g: sum(c["support"] for c in m["per_class"].values()) for g, m in groups.items()} == {
        "base rows": 24,
        "new rows": inside,
    }
    assert card.training_rows == 24 + inside


def test_a_base_that_cannot_be_extended_is_refused_in_one_line(base, tmp_path):
    from mmscore.model.training_rows import TRAINING_ROWS_FILE
    from mmscore.training import train

    new = _pairs(tmp_path / "new.csv", [("a b", "c d", label) for label in LABELS])
    with pytest.raises(InputError, match="differs from the base model's minilm-l6-v2"):
        train(new, tmp_path / "x", base=str(base), text_encoder="bert_base_en_uncased")
    with pytest.raises(InputError, match="--fine-tune cannot extend"):
        train(new, tmp_path / "x", base=str(base), fine_tune=True)
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("head.keras", "model_card.json"):
        (bare / name).write_bytes((base / name).read_bytes())
    with pytest.raises(InputError, match=f"keeps no training rows \\({TRAINING_ROWS_FILE}\\)"):
        train(new, tmp_path / "x", base=str(bare))
    with pytest.raises(InvalidModelError):
        train(new, tmp_path / "x", base=str(tmp_path))  # not a model directory


def test_the_review_queue_is_a_labelling_sheet_and_empty_labels_are_skipped(base, tmp_path):
    """score -> report --review (an empty label column) -> a person fills some rows -> valid training data."""
    import mmscore
    from mmscore.report import write_review_queue
    from mmscore.training import read_labelled_pairs

    pairs = pd.read_csv(SAMPLE / "textbook_pairs.csv", dtype=str).drop(columns="label")
    pairs.to_csv(tmp_path / "pairs.csv", index=False)
    mmscore.Scorer(base, precision="float32").score_file(tmp_path / "pairs.csv", tmp_path / "scored.parquet")
    write_review_queue(tmp_path / "scored.parquet", tmp_path / "review.csv", below=None)
    sheet = pd.read_csv(tmp_path / "review.csv", dtype=str, keep_default_na=False)
    assert "label" in sheet.columns and (sheet["label"] == "").all()
    sheet.loc[sheet.index[:4], "label"] = ["Implies", "Contradictory", "NoEntailment", "Implies"]
    sheet.to_csv(tmp_path / "filled.csv", index=False)
    df, skipped = read_labelled_pairs(tmp_path / "filled.csv")
    assert len(df) == 4 and skipped == len(sheet) - 4


def test_new_rows_in_the_base_domain_retrain_its_main_head(base, tmp_path):
    """New rows like the base's own go to the main head and are learned there: posts the base reads as Implies,
    relabelled NoEntailment and repeated ``new_weight`` times, come out NoEntailment after extending."""
    import mmscore
    from mmscore.model.card import ModelCard
    from mmscore.training import train

    relabelled = [(f"Update {i}: {10 + i} new cases today #news", f"{10 + i} new cases reported today", "NoEntailment")
                  for i in range(8, 14)]  # fmt: skip
    others = [("Update 14: 24 new cases today #news", "24 new cases reported today", "Implies"),
              ("Update 15: 25 new cases today #news", "Update 15: 55 new cases today", "Contradictory")]  # fmt: skip
    new = _pairs(tmp_path / "new.csv", relabelled + others)
    rows = relabelled
    frame = pd.read_csv(new, dtype=str).head(len(rows))
    before = mmscore.Scorer(base, precision="float32").score_frame(frame)
    train(new, tmp_path / "extended", base=str(base), new_weight=10, folds=3, epochs=5, heads=1)
    after = mmscore.Scorer(tmp_path / "extended", precision="float32").score_frame(frame)
    assert ModelCard.load(tmp_path / "extended").base["new_rows_main_head"] == len(rows) + len(others)
    assert (after["labelled_by"] == "main_head").all()
    assert (before["pred_label"] == "NoEntailment").mean() <= 0.2
    assert (after["pred_label"] == "NoEntailment").mean() >= 0.8, after["pred_label"].tolist()
