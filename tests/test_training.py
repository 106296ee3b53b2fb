import json

import numpy as np
import pandas as pd
import pytest

from mmscore.errors import InputError
from mmscore.images.fetcher import FetchSettings, ImageFetcher
from mmscore.images.image_cache import ImageCache
from mmscore.labels import LABEL_INDEX, LABELS
from mmscore.model.card import ModelCard
from mmscore.model.predictor import Predictor
from mmscore.training import (
    PairEmbeddings,
    TrainOptions,
    embed_pairs,
    fit_head,
    head_logits,
    read_labelled_pairs,
    train_model,
)


def _synthetic(n=300, seed=0):
    """Label decided by a rule on the text embeddings: cos(u, v) high -> Implies, negative -> Contradictory."""
    rng = np.random.default_rng(seed)
    u = rng.normal(size=(n, 16)).astype(np.float32)
    y = rng.choice(3, n, p=[0.3, 0.3, 0.4])
    v = np.where((y == 1)[:, None], u + 0.1 * rng.normal(size=u.shape), 0)
    v = np.where((y == 0)[:, None], -u + 0.1 * rng.normal(size=u.shape), v)
    v = np.where((y == 2)[:, None], rng.normal(size=u.shape), v).astype(np.float32)
    z = np.zeros((n, 8), np.float32)
    return PairEmbeddings(u, v, z, z, np.zeros((n, 2), np.float32)), y


def test_head_learns_a_separable_rule_and_beats_majority():
    emb, y = _synthetic()
    train, test = np.arange(200), np.arange(200, 300)
    head = fit_head(emb, y, train, "cross_entropy", TrainOptions(epochs=40, batch_size=32), seed=0)
    accuracy = (head_logits(head, emb, test).argmax(1) == y[test]).mean()
    majority = np.bincount(y[test]).max() / len(test)
    assert accuracy > majority + 0.2


def test_pair_features_make_a_lexical_rule_learnable():
    """Numbers that agree -> Implies, disagree -> Contradictory: invisible in random embeddings, learnable
    from the lexical pair features, so only a head fed those features beats the majority class."""
    from mmscore.model.pair_features import pair_features

    rng = np.random.default_rng(3)
    n = 400
    y = rng.choice(3, n, p=[0.3, 0.3, 0.4])
    first = [f"river level at {rng.integers(100, 999)} cm" for _ in range(n)]
    second = [
        t if label == 1 else f"river level at {rng.integers(100, 999)} cm" if label == 0 else "lovely weather today"
        for t, label in zip(first, y, strict=True)
    ]
    noise = rng.normal(size=(n, 16)).astype(np.float32)
    z = np.zeros((n, 8), np.float32)
    train, test = np.arange(300), np.arange(300, n)
    majority = np.bincount(y[test]).max() / len(test)
    options = TrainOptions(epochs=60, batch_size=32)
    accuracy = {}
    for name, features in (("with", pair_features(first, second)), ("without", None)):
        emb = PairEmbeddings(noise, noise[::-1].copy(), z, z, np.zeros((n, 2), np.float32), pair_features=features)
        head = fit_head(emb, y, train, "cross_entropy", options, seed=0)
        accuracy[name] = (head_logits(head, emb, test).argmax(1) == y[test]).mean()
    assert accuracy["with"] > majority + 0.3
    assert accuracy["without"] < majority + 0.1


def test_pair_features_see_numbers_direction_and_stay_bounded():
    from mmscore.model.pair_features import DIM, pair_features

    same = "Egg Harbor is hiring 12 drivers https://t.co/abc"
    f = pair_features(
        [same, "24,375 new cases in Delhi", "hiring drivers", "x" * 1_000_000, None],
        [same.replace("abc", "xyz"), "25462 new cases in Delhi", "Egg Harbor is hiring drivers today", "x", ""],
    )
    assert f.shape == (5, DIM) and f.dtype == np.float32 and np.isfinite(f).all()
    assert f[0, 0] == 1.0 and f[0, 10] == 1.0  # only the t.co link differs: identical in every lexical view
    assert f[1, 4] == 1.0 and f[0, 4] == 0.0  # both give numbers, none of them agree
    assert f[2, 1] == 1.0 and f[2, 2] < 0.5  # all of text_1 is in text_2, not the other way round
    with pytest.raises(ValueError, match="unknown pair feature set"):
        pair_features(["a"], ["b"], name="lexical-v0")


def test_card_and_head_must_agree_on_pair_features(tmp_path, model_dir):
    import json
    import shutil

    from mmscore.errors import InvalidModelError
    from mmscore.model.card import CARD_FILE

    shutil.copytree(model_dir, tmp_path / "m")
    card = json.loads((tmp_path / "m" / CARD_FILE).read_text())
    card["pair_features"] = "" if card.get("pair_features") else "lexical-v1"
    (tmp_path / "m" / CARD_FILE).write_text(json.dumps(card))
    with pytest.raises(InvalidModelError, match="pair_features"):
        Predictor.load(tmp_path / "m")


def _write_pairs(tmp_path, n_per_class=6):
    rows = []
    for label in LABELS:
        for i in range(n_per_class):
            rows.append({"text_1": f"{label} claim {i}", "text_2": f"about {label.lower()} {i}", "label": label})
    path = tmp_path / "train.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def _offline_fetcher(tmp_path):
    return ImageFetcher(ImageCache(tmp_path / "img"), settings=FetchSettings(offline=True), image_root=tmp_path)


def test_train_save_load_predict_round_trip(tmp_path):
    data = _write_pairs(tmp_path)
    options = TrainOptions(losses=("cross_entropy",), folds=3, epochs=3, heads=1)
    result = train_model(
        data, tmp_path / "model", _offline_fetcher(tmp_path), options=options, cache_root=tmp_path / "emb"
    )
    card = ModelCard.load(tmp_path / "model")  # validates
    assert card.training_rows == 18 and card.loss == "cross_entropy" and card.labels == list(LABELS)
    assert set(card.cv_metrics["per_loss"]["cross_entropy"]["per_class"]) == set(LABELS)
    assert card.pair_features == "lexical-v1" and "lexical-v1" in card.model_id()
    rng = np.random.default_rng(1)
    inputs = [rng.normal(size=(4, d)).astype(np.float32) for d in (384, 384, 1280, 1280)]
    mask = np.ones((4, 2), np.float32)
    first = Predictor.load(tmp_path / "model")
    lexical = first.pair_features(["12 cases", "a", "b c", ""], ["13 cases", "a", "c", "d"])
    a = first.predict_embeddings(*inputs, mask, lexical)
    b = Predictor.load(tmp_path / "model").predict_embeddings(*inputs, mask, lexical)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(a.sum(1), 1.0, atol=1e-5)
    assert result.encoded["text"] == 36
    # the in-domain reference is written beside the head, fitted on the 18 pairs' held-out folds
    assert first.domain is not None and len(first.domain.held_out) == 18 and len(first.domain.text_vectors) == 36
    assert card.domain["cut_rank"] == first.domain.cut_rank == 1  # ceil(5 % of 18)


def test_embedding_cache_skips_encoders_and_invalidates_one_entry(tmp_path, text_encoder, image_encoder):
    data = _write_pairs(tmp_path, 2)
    df, _ = read_labelled_pairs(data)
    fetcher = _offline_fetcher(tmp_path)
    calls = []

    class Counting:
        def __init__(self, inner):
            self.inner = inner

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def encode(self, items):
            calls.append(len(items))
            return self.inner.encode(items)

    counted = Counting(text_encoder)
    first = embed_pairs(df, None, fetcher, counted, image_encoder, tmp_path / "emb")
    assert sum(calls) == 12
    calls.clear()
    again = embed_pairs(df, None, fetcher, counted, image_encoder, tmp_path / "emb")
    assert calls == []
    np.testing.assert_array_equal(first.text_1, again.text_1)
    df.loc[0, "text_1"] = "a changed text"
    changed = embed_pairs(df, None, fetcher, counted, image_encoder, tmp_path / "emb")
    assert calls == [1]
    assert not np.allclose(changed.text_1[0], first.text_1[0])
    np.testing.assert_array_equal(changed.text_1[1:], first.text_1[1:])


def test_image_2_embedding_comes_from_image_2(tmp_path, text_encoder, image_encoder):
    from PIL import Image

    for name, colour in (("a", (255, 0, 0)), ("b", (0, 0, 255))):
        Image.new("RGB", (50, 50), colour).save(tmp_path / f"{name}.png")
    df = pd.DataFrame({"id_1": ["a"], "id_2": ["b"], "text_1": ["x"], "text_2": ["y"], "label": ["Implies"]})
    emb = embed_pairs(df, tmp_path, _offline_fetcher(tmp_path), text_encoder, image_encoder, tmp_path / "emb")
    swapped = embed_pairs(
        df.rename(columns={"id_1": "id_2", "id_2": "id_1"}),
        tmp_path,
        _offline_fetcher(tmp_path),
        text_encoder,
        image_encoder,
        tmp_path / "emb",
    )
    assert emb.image_mask.tolist() == [[1.0, 1.0]]
    assert not np.allclose(emb.image_1, emb.image_2)
    np.testing.assert_allclose(swapped.image_1, emb.image_2)


@pytest.mark.parametrize(
    "frame,message",
    [
        (pd.DataFrame({"text_1": ["a"], "text_2": ["b"]}), "missing required column"),
        (pd.DataFrame({"text_1": ["a"], "text_2": ["b"], "label": ["Maybe"]}), "unknown label value"),
    ],
)
def test_bad_training_data_errors(tmp_path, frame, message):
    frame.to_csv(tmp_path / "d.csv", index=False)
    with pytest.raises(InputError, match=message):
        read_labelled_pairs(tmp_path / "d.csv")


def test_too_few_examples_per_class(tmp_path):
    data = _write_pairs(tmp_path, 2)
    with pytest.raises(InputError, match="fewer than 5 examples"):
        train_model(data, tmp_path / "m", _offline_fetcher(tmp_path), cache_root=tmp_path / "emb")


def test_empty_texts_are_skipped_and_counted(tmp_path):
    pd.DataFrame({"text_1": ["a", " ", "c"], "text_2": ["b", "x", ""], "label": ["Implies"] * 3}).to_csv(
        tmp_path / "d.csv", index=False
    )
    df, skipped = read_labelled_pairs(tmp_path / "d.csv")
    assert len(df) == 1 and skipped == 2


def test_a_head_with_python_code_inside_is_refused(tmp_path, model_dir):
    import shutil

    import keras

    from mmscore.errors import InvalidModelError
    from mmscore.model.card import CARD_FILE, HEAD_FILE
    from mmscore.model.predictor import Predictor

    marker = tmp_path / "code-ran"
    inputs = keras.Input((3,))
    touch = eval(f"lambda x: (open({str(marker)!r}, 'w').close(), x)[1]")  # code that leaves a trace if run
    keras.Model(inputs, keras.layers.Lambda(touch)(inputs)).save(tmp_path / HEAD_FILE)
    marker.unlink()  # building the model ran it once; loading must not run it again
    shutil.copy(model_dir / CARD_FILE, tmp_path / CARD_FILE)
    with pytest.raises(InvalidModelError, match="refused to load"):
        Predictor.load(tmp_path)
    assert not marker.exists()


def test_fine_tune_trains_the_text_encoder_and_scoring_uses_it(tmp_path, text_encoder):
    data = _write_pairs(tmp_path)
    options = TrainOptions(
        losses=("cross_entropy",), folds=2, epochs=3, fine_tune=True, fine_tune_epochs=1,
        fine_tune_learning_rate=1e-4, sequence_length=16,
    )  # fmt: skip
    result = train_model(data, tmp_path / "model", _offline_fetcher(tmp_path), options=options,
                         cache_root=tmp_path / "emb")  # fmt: skip
    card = ModelCard.load(tmp_path / "model")
    assert card.text_encoder_weights and (tmp_path / "model" / card.text_encoder_weights).is_file()
    assert "finetuned" in card.model_id() and result.per_loss["cross_entropy"]["macro_f1"] >= 0

    texts = ["Implies claim 1", "about contradictory 2"]
    tuned = Predictor.load(tmp_path / "model").text_encoder
    moved = np.abs(tuned.encode(texts) - text_encoder.encode(texts)).max()
    assert moved > 1e-3  # the encoder really trained, and the predictor loads the trained weights
    # The shared pretrained encoder is untouched: other models in this process keep their behaviour.
    from mmscore.encoders import registry

    fresh = registry.build_text_encoder(sequence_length=text_encoder.sequence_length)
    np.testing.assert_allclose(text_encoder.encode(texts), fresh.encode(texts), atol=1e-6)


def test_head_on_real_tweet_pairs_beats_the_majority_class_on_held_out_rows(
    tmp_path, shared_data, text_encoder, image_encoder
):
    """The recipe on real data: frozen embeddings + lexical pair features, fitted on 80 %, judged on the rest."""
    from sklearn.model_selection import train_test_split

    from mmscore.metrics import macro_f1
    from mmscore.model.pair_features import pair_features

    df, _ = read_labelled_pairs(shared_data / "tweets" / "tweets_trainval.csv")
    # The shared embedding cache: a second run of the suite skips the encoders.
    emb = embed_pairs(df, None, _offline_fetcher(tmp_path), text_encoder, image_encoder)
    emb.pair_features = pair_features(df["text_1"], df["text_2"])
    y = np.array([LABEL_INDEX[v] for v in df["label"]])
    train, test = train_test_split(np.arange(len(y)), test_size=0.2, stratify=y, random_state=0)
    head = fit_head(emb, y, train, "focal", TrainOptions(), seed=0)
    predicted = head_logits(head, emb, test).argmax(1)
    majority = macro_f1(y[test], np.full(len(test), LABEL_INDEX["NoEntailment"]))
    assert majority < 0.31
    assert macro_f1(y[test], predicted) > majority + 0.12
    assert (predicted[y[test] == LABEL_INDEX["Contradictory"]] == LABEL_INDEX["Contradictory"]).mean() > 0.25


def test_text_2_embedding_comes_from_text_2(tmp_path, text_encoder, image_encoder):
    """Training pairs each text_1 with its own text_2 (the reference example's texts-not-paired bug class)."""
    df = pd.DataFrame(
        {
            "text_1": ["The bridge is closed all weekend.", "Our team won 3-1."],
            "text_2": ["Heavy rain is expected on the coast.", "A new bakery opened on Main Street."],
            "label": ["Implies", "Contradictory"],
        }
    )
    emb = embed_pairs(df, None, _offline_fetcher(tmp_path), text_encoder, image_encoder, tmp_path / "emb")
    np.testing.assert_allclose(emb.text_1, text_encoder.encode(list(df["text_1"])), atol=1e-5)
    np.testing.assert_allclose(emb.text_2, text_encoder.encode(list(df["text_2"])), atol=1e-5)


def test_lexical_v2_sees_negation_antonyms_and_reordered_numbers():
    from mmscore.model.pair_features import DIMS, pair_features

    pairs = [
        ("The mayor resigned this morning.", "The mayor says she will not resign."),  # negation
        ("Our team won the final.", "Our team lost the final."),  # antonym
        ("Final score 3-1 tonight", "Final score 1-3 tonight"),  # same numbers, other order
        ("The bridge is open again.", "The bridge is open again."),  # the same statement
        ("The pool will not open.", "No, the pool will not open this year."),  # both negated: no contrast
    ]
    v2 = pair_features([a for a, _ in pairs], [b for _, b in pairs], "lexical-v2")
    assert v2.shape == (5, DIMS["lexical-v2"]) and DIMS["lexical-v1"] == 15
    np.testing.assert_array_equal(v2[:, 15:], [[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 0], [0, 0, 0]])
    v1 = pair_features([a for a, _ in pairs], [b for _, b in pairs], "lexical-v1")
    np.testing.assert_array_equal(v1, v2[:, :15])  # v2 extends v1: the first 15 values are v1's


def test_seed_heads_are_averaged_into_one_saved_model(tmp_path):
    """--heads 3: three heads from different seeds, one head.keras whose logits are their mean."""
    data = _write_pairs(tmp_path)
    options = TrainOptions(losses=("cross_entropy",), folds=3, epochs=3, heads=3)
    train_model(data, tmp_path / "model", _offline_fetcher(tmp_path), options=options, cache_root=tmp_path / "emb")
    predictor = Predictor.load(tmp_path / "model")
    heads = [layer for layer in predictor.head.layers if layer.name.startswith("entailment_head_")]
    assert len(heads) == 3 and predictor.head.get_layer("seed_average")
    rng = np.random.default_rng(2)
    inputs = [rng.normal(size=(5, d)).astype(np.float32) for d in (384, 384, 1280, 1280)]
    lexical = predictor.pair_features(["a 1"] * 5, ["b 2"] * 5)
    by_name = predictor._head_inputs(*inputs, np.ones((5, 2), np.float32), lexical)
    each = [np.asarray(h.predict([by_name[t.name] for t in h.inputs], verbose=0)) for h in heads]
    np.testing.assert_allclose(predictor.head.predict(by_name, verbose=0), np.mean(each, 0), rtol=1e-5, atol=1e-5)
    assert len({float(np.abs(e).sum()) for e in each}) == 3  # three different heads, not one copied
    with pytest.raises(ValueError, match="heads must be at least 1"):
        TrainOptions(heads=0)


def test_rows_after_the_validated_ones_train_only_outside_their_source_fold_and_are_never_scored():
    """Pairs built from training rows (a study's augmentation) carry their source row's fold: a fold's head
    never trains on pairs built from the rows it is validated on, and no built pair is ever validated."""
    from mmscore.training import RowLayout, cross_validate

    emb, y = _synthetic(n=120, seed=4)
    folds = np.arange(120) % 3
    source = np.arange(0, 120, 4)  # 30 built rows, copies of these with the label flipped
    built = PairEmbeddings.concatenate([emb, PairEmbeddings(*(a[source] for a in (emb.text_1, emb.text_2,
                                        emb.image_1, emb.image_2, emb.image_mask)))])  # fmt: skip
    labels = np.concatenate([y, (y[source] + 1) % 3])
    layout = RowLayout(np.concatenate([folds, folds[source]]), validated=120)
    for k, (train_rows, test_rows) in enumerate(layout.folds()):
        assert set(test_rows) == set(np.flatnonzero(folds == k))
        built_trained = train_rows[train_rows >= 120] - 120
        assert set(built_trained) == set(np.flatnonzero(folds[source] != k))
    metrics, oof = cross_validate(built, labels, "cross_entropy", TrainOptions(folds=3, epochs=5), layout=layout)
    assert oof.shape == (120, 3)
    assert sum(fold["rows"] for fold in metrics["per_fold"]) == 120


def test_cv_over_seeds_lists_each_seed_and_leaves_the_model_as_it_is(tmp_path):
    """--cv-seeds 3: the card lists three cross-validations (seed 0 is the one the offsets come from, seeds 1 and 2
    draw other folds), their mean and sd; the saved head is the one a single CV gives."""
    data = _write_pairs(tmp_path, n_per_class=10)
    heads = {}
    for cv_seeds in (1, 3):
        options = TrainOptions(losses=("cross_entropy",), folds=3, epochs=3, heads=1, cv_seeds=cv_seeds)
        out = tmp_path / f"model{cv_seeds}"
        train_model(data, out, _offline_fetcher(tmp_path), options=options, cache_root=tmp_path / "emb")
        heads[cv_seeds] = [np.asarray(w) for w in Predictor.load(out).head.weights]
    for a, b in zip(heads[1], heads[3], strict=True):
        np.testing.assert_array_equal(a, b)
    card = ModelCard.load(tmp_path / "model3")
    per_seed, over = card.cv_metrics["per_seed"], card.cv_metrics["over_seeds"]
    assert [s["seed"] for s in per_seed] == [0, 1, 2] and over["seeds"] == 3
    assert per_seed[0]["macro_f1"] == round(card.cv_metrics["per_loss"]["cross_entropy"]["macro_f1"], 4)
    assert "per_seed" not in ModelCard.load(tmp_path / "model1").cv_metrics
    assert len({json.dumps({k: v for k, v in s.items() if k != "seed"}) for s in per_seed}) == 3  # other draws
    scores = [s["macro_f1"] for s in per_seed]
    assert over["macro_f1"]["mean"] == pytest.approx(np.mean(scores), abs=1e-4)
    assert over["macro_f1"]["sd"] == pytest.approx(np.std(scores, ddof=1), abs=1e-4)
    with pytest.raises(ValueError, match="cv_seeds must be at least 1"):
        TrainOptions(cv_seeds=0)
