"""Calibration: the temperature fit, the metrics, cross-fitting, and probabilities a scorer applies."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmscore.labels import LABEL_INDEX
from mmscore.metrics import CalibrationTally, calibration, fit_temperature, softmax


def _overconfident(n=6000, true_temperature=2.5, seed=0):
    """Logits whose labels are drawn from softmax(logits / T): the right temperature is T."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=3.0, size=(n, 3))
    p = softmax(logits / true_temperature)
    y = np.array([rng.choice(3, p=row) for row in p])
    return logits, y


def test_temperature_fit_recovers_the_generating_temperature_and_keeps_labels():
    logits, y = _overconfident()
    t = fit_temperature(logits, y)
    assert t == pytest.approx(2.5, rel=0.1)
    assert (softmax(logits / t).argmax(1) == logits.argmax(1)).all()
    before, after = calibration(softmax(logits), y), calibration(softmax(logits / t), y)
    assert after["ece"] < before["ece"] / 3 and after["log_loss"] < before["log_loss"]


def test_underconfident_logits_get_a_temperature_below_one():
    logits, y = _overconfident(true_temperature=0.5, seed=1)
    assert fit_temperature(logits, y) == pytest.approx(0.5, rel=0.1)


def test_calibration_metrics_on_a_hand_computed_example():
    probs = np.array([[0.9, 0.05, 0.05], [0.9, 0.05, 0.05], [0.2, 0.7, 0.1], [0.2, 0.2, 0.6]])
    y = np.array([0, 1, 1, 2])
    m = calibration(probs, y)
    # bins: 0.9 (2 rows, accuracy 0.5), 0.7 (1 row, right), 0.6 (1 row, right)
    assert m["ece"] == pytest.approx((2 * abs(0.9 - 0.5) + abs(0.7 - 1) + abs(0.6 - 1)) / 4)
    assert m["log_loss"] == pytest.approx(-np.mean(np.log([0.9, 0.05, 0.7, 0.6])))
    brier = [0.1**2 + 2 * 0.05**2, 0.9**2 + 0.95**2 + 0.05**2, 0.2**2 + 0.3**2 + 0.1**2, 0.2**2 + 0.2**2 + 0.4**2]
    assert m["brier"] == pytest.approx(np.mean(brier))
    assert m["mean_confidence"] == pytest.approx(0.775) and m["accuracy"] == pytest.approx(0.75)
    assert [b["rows"] for b in m["reliability"]] == [0, 0, 0, 0, 0, 0, 1, 1, 0, 2]


def test_streaming_tally_equals_one_pass():
    logits, y = _overconfident(n=1000)
    p = softmax(logits)
    tally = CalibrationTally()
    for lo in range(0, 1000, 137):
        tally.add(p[lo : lo + 137], y[lo : lo + 137])
    streamed, whole = tally.summary(), calibration(p, y)
    for key in ("ece", "log_loss", "brier", "mean_confidence", "accuracy"):
        assert streamed[key] == pytest.approx(whole[key])


def test_each_folds_offsets_and_temperature_come_only_from_the_other_folds():
    """Relabelling one fold's rows must not move that fold's offsets or temperature; it moves the others'."""
    from sklearn.model_selection import StratifiedKFold

    from mmscore.training.cross_fitting import _cross_fitted_metrics

    logits, y = _overconfident(n=600, seed=3)
    folds = list(StratifiedKFold(3, shuffle=True, random_state=0).split(y, y))
    base = _cross_fitted_metrics(logits.astype(np.float32), {}, y, folds)["per_fold"]
    flipped = y.copy()
    flipped[folds[0][1]] = (flipped[folds[0][1]] + 1) % 3
    moved = _cross_fitted_metrics(logits.astype(np.float32), {}, flipped, folds)["per_fold"]
    assert moved[0]["offsets"] == base[0]["offsets"]
    assert moved[0]["temperature"] == pytest.approx(base[0]["temperature"])
    assert moved[1]["temperature"] != pytest.approx(base[1]["temperature"], rel=1e-3)


def test_offsets_and_temperature_come_only_from_the_calibrated_rows():
    """Extending a model calibrates on the base rows alone: relabelling the other rows moves nothing."""
    from sklearn.model_selection import StratifiedKFold

    from mmscore.training.cross_fitting import _cross_fitted_metrics

    logits, y = _overconfident(n=600, seed=5)
    folds = list(StratifiedKFold(3, shuffle=True, random_state=0).split(y, y))
    calibrated = np.arange(600) < 450
    relabelled = y.copy()
    relabelled[~calibrated] = (y[~calibrated] + 1) % 3
    base = _cross_fitted_metrics(logits.astype(np.float32), {}, y, folds, calibrated=calibrated)["per_fold"]
    moved = _cross_fitted_metrics(logits.astype(np.float32), {}, relabelled, folds, calibrated=calibrated)["per_fold"]
    unguarded = _cross_fitted_metrics(logits.astype(np.float32), {}, relabelled, folds)["per_fold"]
    for k in range(3):
        assert moved[k]["offsets"] == base[k]["offsets"]
        assert moved[k]["temperature"] == pytest.approx(base[k]["temperature"])
    assert any(
        u["temperature"] != pytest.approx(b["temperature"], rel=1e-3) for u, b in zip(unguarded, base, strict=True)
    )


def _model_with(model_dir, tmp_path, **card_fields):
    """A copy of the test model directory whose card carries ``card_fields``."""
    import shutil

    from mmscore.model.card import ModelCard

    directory = tmp_path / "model"
    shutil.copytree(model_dir, directory)
    card = ModelCard.load(directory)
    for key, value in card_fields.items():
        setattr(card, key, value)
    card.save(directory)
    return directory


def _random_inputs(n=64, seed=0):
    rng = np.random.default_rng(seed)
    t1, t2 = rng.normal(size=(2, n, 384)).astype(np.float32)
    images = np.zeros((n, 1280), np.float32)
    return t1, t2, images, images, np.zeros((n, 2), np.float32), np.zeros((n, 0), np.float32)


def test_scoring_applies_the_cards_offsets_and_temperature(model_dir, tmp_path):
    from mmscore.model.predictor import Predictor

    offsets = [1.5, -0.75, 0.0]
    plain = Predictor.load(model_dir)
    tuned = Predictor.load(_model_with(model_dir, tmp_path, decision_offsets=offsets, temperature=0.4))
    inputs = _random_inputs()
    logits = np.asarray(plain.head.predict(plain._head_inputs(*inputs), verbose=0))
    got = tuned.predict_embeddings(*inputs)
    np.testing.assert_allclose(got, softmax((logits + offsets) / 0.4), rtol=1e-4, atol=1e-6)
    assert (got.argmax(1) == (logits + offsets).argmax(1)).all()
    # the offsets really move labels on these rows (else this test could not see them dropped)
    assert (got.argmax(1) != plain.predict_embeddings(*inputs).argmax(1)).any()
    assert (got.argmax(1) == LABEL_INDEX["Contradictory"]).mean() > (logits.argmax(1) == 0).mean()


def test_a_card_without_temperature_loads_with_one(model_dir, tmp_path):
    import json

    from mmscore.errors import InvalidModelError
    from mmscore.model.card import CARD_FILE
    from mmscore.model.predictor import Predictor

    directory = _model_with(model_dir, tmp_path)
    raw = json.loads((directory / CARD_FILE).read_text())
    raw.pop("temperature")
    (directory / CARD_FILE).write_text(json.dumps(raw))
    assert Predictor.load(directory).temperature == 1.0
    raw["temperature"] = -1
    (directory / CARD_FILE).write_text(json.dumps(raw))
    with pytest.raises(InvalidModelError, match="temperature"):
        Predictor.load(directory)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 2)), min_size=1, max_size=60))
def test_macro_f1_equals_scikit_learn(pairs):
    """The NumPy macro-F1 that offset tuning calls thousands of times agrees with scikit-learn's, including
    classes that are never seen or never predicted."""
    from sklearn.metrics import f1_score

    from mmscore.metrics import macro_f1

    y, pred = (np.array(column) for column in zip(*pairs, strict=True))
    expected = f1_score(y, pred, labels=[0, 1, 2], average="macro", zero_division=0)
    assert macro_f1(y, pred) == pytest.approx(expected, abs=1e-12)
