"""The in-domain score: about 95 % of real pairs like the training ones pass, plain-language pairs are flagged,
the cut is exact, and the report and review queue say it."""

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmscore.labels import LABELS, PROB_COLUMNS
from mmscore.model.domain import DomainReference, FormStats, fit_domain

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"


def _reference(held_out) -> DomainReference:
    form = FormStats(1.0, 1.0, np.full(4, 0.5))
    return DomainReference(np.eye(4, dtype=np.float32), form, 0.0, 1.0, 0.0, 1.0, np.sort(np.asarray(held_out)))


def test_the_cut_is_exact_on_counts_of_held_out_pairs():
    reference = _reference(np.arange(40, dtype=np.float64))  # cut rank ceil(0.05 * 40) = 2
    assert reference.cut_rank == 2
    score, inside = reference.place(np.array([-1.0, 0.5, 1.0, 1.5, 2.0, 39.5]))
    assert inside.tolist() == [False, False, False, True, True, True]  # 2 held-out pairs below 2.0 and 1.5
    np.testing.assert_array_equal(score, np.float32([0, 1 / 40, 1 / 40, 2 / 40, 2 / 40, 1.0]))


def test_reference_survives_a_save_and_load(tmp_path):
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(2, 30, 8))
    texts = [f"post {i} about #topic {i}" for i in range(30)]
    reference = fit_domain(vectors[0], vectors[1], texts, texts[::-1], np.arange(30) % 3)
    with open(tmp_path / "domain.npz", "wb") as f:
        reference.save(f)
    again = DomainReference.load(tmp_path / "domain.npz")
    query = rng.normal(size=(2, 5, 8))
    a = reference.score(query[0], query[1], texts[:5], texts[5:10])
    b = again.score(query[0], query[1], texts[:5], texts[5:10])
    np.testing.assert_allclose(a[0], b[0], atol=1 / 30)  # float16 vectors on disk: at most one rank apart
    assert fit_domain(vectors[0][:5], vectors[1][:5], texts[:5], texts[:5], np.arange(5) % 2) is None  # too few


DIGITS_TO_LETTERS = str.maketrans("0123456789", "abcdefghij")


@settings(max_examples=80, deadline=None)
@given(st.text(min_size=1, max_size=40))
def test_a_reference_that_leaves_digits_out_reads_a_number_as_any_other_word(query):
    """Untrusted texts: under a reference fitted without the digits flag, a text and the same text with its digits
    turned into letters are exactly as typical (same vectors); a reference counting every flag tells a text
    holding a digit from its lettered twin. The choice survives a save and a load; an unknown flag is refused."""
    import io

    from mmscore.model.domain import counted_flags, fit_domain_forms, text_form

    rng = np.random.default_rng(len(query))
    vectors = rng.normal(size=(2, 12, 6))
    texts = [" ".join(["word"] * (1 + i % 5)) + " #tag" * (i % 2) for i in range(12)]
    forms = text_form(texts), text_form(texts[::-1])
    forms[0][:6, 3] = 1.0  # half the first texts hold a digit: the flag's probability is not one half
    lettered = query.translate(DIGITS_TO_LETTERS)
    v = rng.normal(size=(1, 6))
    for ignored, same in (((), None), (("digits",), True)):
        reference = fit_domain_forms(*vectors, *forms, np.arange(12) % 3, counted_flags(ignored))
        buffer = io.BytesIO()
        reference.save(buffer)
        buffer.seek(0)
        for ref in (reference, DomainReference.load(buffer)):
            a = ref.typicality(v, v, [query], [query])
            b = ref.typicality(v, v, [lettered], [lettered])
            if same or lettered == query:
                np.testing.assert_allclose(a, b, rtol=1e-12)
            else:
                assert not np.allclose(a, b)
    with pytest.raises(ValueError, match="unknown form flags"):
        counted_flags(("numbers",))


def test_unseen_real_pairs_pass_and_plain_language_pairs_are_flagged(
    tmp_path, shared_data, text_encoder, image_encoder
):
    """Fitted on 80 % of the real tweet pairs, the cut flags about 5 % of the other 20 % (bar: <= 10 %) and most
    plain-language textbook pairs (bar: >= 70 %)."""
    from sklearn.model_selection import StratifiedKFold, train_test_split

    from mmscore.images.fetcher import FetchSettings, ImageFetcher
    from mmscore.images.image_cache import ImageCache
    from mmscore.training import embed_pairs, read_labelled_pairs

    df, _ = read_labelled_pairs(shared_data / "tweets" / "tweets_trainval.csv")
    fetcher = ImageFetcher(ImageCache(), settings=FetchSettings(offline=True))
    emb = embed_pairs(df, None, fetcher, text_encoder, image_encoder)  # the session's cache: embedded once
    y = df["label"].to_numpy()
    train, test = train_test_split(np.arange(len(df)), test_size=0.2, stratify=y, random_state=3)
    folds = np.zeros(len(train), np.int64)
    for k, (_, held) in enumerate(StratifiedKFold(5, shuffle=True, random_state=0).split(train, y[train])):
        folds[held] = k
    t1, t2 = df["text_1"].to_numpy(), df["text_2"].to_numpy()
    reference = fit_domain(emb.text_1[train], emb.text_2[train], t1[train], t2[train], folds)
    _, inside = reference.score(emb.text_1[test], emb.text_2[test], list(t1[test]), list(t2[test]))
    assert 0.01 <= 1 - inside.mean() <= 0.10, 1 - inside.mean()
    textbook = pd.read_csv(SAMPLE / "textbook_pairs.csv", dtype=str)
    a, b = (text_encoder.encode(list(textbook[c])) for c in ("text_1", "text_2"))
    _, inside = reference.score(a, b, list(textbook["text_1"]), list(textbook["text_2"]))
    assert 1 - inside.mean() >= 0.7, 1 - inside.mean()


def test_shipped_model_flags_textbook_pairs_when_scoring(tmp_path):
    """End to end through the scoring step: the shipped model's reference, the vectors the step returns."""
    import mmscore

    scorer = mmscore.Scorer(precision="float32")
    assert scorer.predictor.domain is not None and scorer.predictor.card.domain["cut_rank"] >= 1
    out = scorer.score_frame(pd.read_csv(SAMPLE / "textbook_pairs.csv", dtype=str))
    assert out["in_domain_score"].dtype == np.float32 and out["in_domain"].dtype == bool
    assert (~out["in_domain"]).mean() >= 0.7
    assert ((out["in_domain_score"] >= scorer.predictor.domain.cut_rank / 1260) == out["in_domain"]).all()


def _scored(path: Path, flags: list) -> Path:
    n = len(flags)
    top = np.linspace(0.5, 0.95, n).astype(np.float32)
    table = pa.table({"id": [str(i) for i in range(n)], "text_1": ["a"] * n, "text_2": ["b"] * n})
    table = table.append_column("pred_label", pa.array([LABELS[i % 3] for i in range(n)]))
    for i, name in enumerate(PROB_COLUMNS):
        table = table.append_column(name, pa.array(top if i == 0 else (1 - top) / 2, pa.float32()))
    table = table.append_column("in_domain_score", pa.array([0.5] * n, pa.float32()))
    table = table.append_column("in_domain", pa.array(flags, pa.bool_()))
    pq.write_table(table, path)
    return path


@pytest.mark.parametrize(("out", "warns"), [(2, False), (3, True)])
def test_report_warns_above_a_fifth_out_of_domain_and_review_selects_them(tmp_path, out, warns):
    """2 of 10 rows out is exactly the 20 % cut (no warning); 3 of 10 warns, in the report and its JSON."""
    from typer.testing import CliRunner

    from mmscore.cli import app
    from mmscore.report import build_report, write_review_queue

    flags = [True] * (10 - out) + [False] * out
    scored = _scored(tmp_path / "scored.parquet", flags)
    report = build_report(scored)
    facts = report.domain.to_json()
    assert facts["out_of_domain"]["rows"] == out and facts["warning"] is warns
    assert facts["out_of_domain"]["mean_confidence"] == pytest.approx(float(np.linspace(0.5, 0.95, 10)[-out:].mean()))
    result = CliRunner().invoke(app, ["report", str(scored), "--review", str(tmp_path / "q.csv"), "--out-of-domain"])
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())  # rich wraps lines
    assert ("out of domain: the model's main head was trained on other kinds of pairs" in said) is warns
    assert ("extend it: mmscore train LABELLED.csv --base default" in said) is warns
    queue = pd.read_csv(tmp_path / "q.csv", dtype=str)
    assert queue["id"].tolist() == [str(i) for i in range(10 - out, 10)]  # exactly the flagged rows
    assert write_review_queue(scored, tmp_path / "all.csv", below=None).rows == 10


@pytest.mark.parametrize(("taken", "said"), [(0, "On them the labels"), (2, "2 of them were labelled"),
                                              (3, "All of them were labelled")])  # fmt: skip
def test_the_warning_says_which_out_of_domain_rows_the_second_head_labelled(taken, said):
    """Of 3 rows out of domain: none, some or all labelled by the second head; only rows it did not label are
    called ones whose labels say little."""
    from mmscore.render import _out_of_domain_labels
    from mmscore.report import DomainTally

    tally = DomainTally()
    labelled_by = ["second_head"] * taken + ["main_head"] * (5 - taken)
    tally.add([False, False, False, True, True], np.zeros(5, int), np.full(5, 0.9), labelled_by)
    sentence = _out_of_domain_labels(tally)
    assert sentence.startswith(said)
    assert ("say little" in sentence) is (taken < 3)


def test_rows_in_domain_labelled_by_the_second_head_are_not_counted_as_out_of_domain_ones():
    """The router may give the second head a row the main reference calls in domain (more typical of SNLI's pairs):
    the warning counts only the out-of-domain rows it labelled, and the table's title says how many it labelled."""
    from mmscore.render import _out_of_domain_labels, domain_table
    from mmscore.report import DomainTally

    tally = DomainTally()
    tally.add([False, False, False, True, True], np.zeros(5, int), np.full(5, 0.9),
              ["second_head", "main_head", "main_head", "second_head", "main_head"])  # fmt: skip
    assert tally.to_json()["labelled_by_second_head"] == 2
    assert tally.to_json()["out_of_domain_labelled_by_second_head"] == 1
    assert _out_of_domain_labels(tally).startswith("1 of them were labelled")
    assert "2 rows labelled by the second head (1 of them out of domain)" in domain_table(tally).title


def test_review_with_out_of_domain_and_below_keeps_both_filters_at_the_exact_cut(tmp_path):
    """``--review --out-of-domain --below X``: a row enters only when it is out of domain *and* its max probability
    is strictly below X. Rows sit exactly at the cut (binary fractions: exact in float32 and float64), in domain
    below it, and out of domain above it; the summary says both filters."""
    from typer.testing import CliRunner

    from mmscore.cli import app

    confidence = [0.5, 0.625, 0.625, 0.75, 0.5, 0.875, 0.25]
    flags = [False, False, True, False, True, False, False]
    scored = _scored(tmp_path / "scored.parquet", flags)
    table = pq.read_table(scored)
    top = pa.array(confidence, pa.float32())
    rest = pa.array([(1 - c) / 2 for c in confidence], pa.float32())
    for i, name in enumerate(PROB_COLUMNS):
        table = table.set_column(table.schema.get_field_index(name), name, top if i == 0 else rest)
    pq.write_table(table, scored)
    queue_path = tmp_path / "q.csv"
    args = ["report", str(scored), "--review", str(queue_path), "--out-of-domain", "--below", "0.625"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    queue = pd.read_csv(queue_path, dtype=str)
    assert queue["id"].tolist() == ["6", "0"]  # out of domain and below 0.625, least confident first
    said = " ".join(result.output.split())
    assert "< 0.625" in said and "out of domain" in said
