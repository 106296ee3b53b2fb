"""Images as evidence, never as a shortcut: augmentation with unrelated photos, the probe, the gate, and
proof that the image path still learns when images carry the label."""

import numpy as np
import pandas as pd

from mmscore.labels import LABEL_INDEX, LABELS
from mmscore.training import PairEmbeddings, TrainOptions, fit_head, head_logits
from mmscore.training.unrelated_photos import (
    ATTACH_SHARE,
    _decoded_photos,
    _views,
    attach_unrelated,
    load_photo_sets,
    probe_photos,
    without_images,
)


def _bare(n=1000, dim=8, seed=0):
    rng = np.random.default_rng(seed)
    t = rng.normal(size=(n, 4)).astype(np.float32)
    z = np.zeros((n, dim), np.float32)
    return PairEmbeddings(t, t.copy(), z, z.copy(), np.zeros((n, 2), np.float32))


def test_augmentation_attaches_only_given_photos_to_bare_rows_and_keeps_own_images():
    emb = _bare()
    own = np.arange(10)
    emb.image_1[own] = 7.0
    emb.image_mask[own, 0] = 1.0
    photos = np.arange(1, 6, dtype=np.float32)[:, None] * np.ones((5, 8), np.float32)
    rows = np.arange(800)  # the last 200 rows are another fold's: untouched
    out = attach_unrelated(emb, rows, photos, seed=0)
    np.testing.assert_array_equal(out.image_1[own], emb.image_1[own])
    np.testing.assert_array_equal(out.image_mask[own], emb.image_mask[own])
    assert not out.image_mask[800:].any() and not emb.image_mask[10:].any()  # the input is not modified
    attached = out.image_mask[10:800, 0] == 1
    assert abs(attached.mean() - ATTACH_SHARE) < 0.06
    assert set(np.unique(out.image_1[10:800][attached][:, 0])) <= set(photos[:, 0])
    both = out.image_mask[10:800].sum(1) == 2
    same = both & (out.image_1[10:800, 0] == out.image_2[10:800, 0])
    assert 0.05 < same.mean() < 0.25 and (both & ~same).mean() > 0.3 and (attached & ~both).any()
    np.testing.assert_array_equal(out.image_2[10:800][out.image_mask[10:800, 1] == 0], 0)


def test_probe_gives_every_row_photos_and_same_means_same():
    emb = _bare(50)
    photos = np.random.default_rng(1).normal(size=(6, 8)).astype(np.float32)
    rows = np.arange(20, 50)
    two = probe_photos(emb, rows, photos, seed=5)
    same = probe_photos(emb, rows, photos, seed=5, same=True)
    assert two.image_mask[rows].all() and not two.image_mask[:20].any()
    assert (np.abs(two.image_1[rows] - two.image_2[rows]).sum(1) > 0).all()
    np.testing.assert_array_equal(same.image_1[rows], same.image_2[rows])
    np.testing.assert_array_equal(probe_photos(emb, rows, photos, seed=5).image_1, two.image_1)  # seeded


def test_real_photo_folder_splits_into_disjoint_augmentation_and_probe(shared_data, image_encoder, tmp_path):
    folder = shared_data / "images" / "mediaeval2016"
    sets = load_photo_sets(folder, image_encoder, tmp_path / "emb")
    photos = len(_decoded_photos(folder, image_encoder.image_size))
    assert len(sets.probe) == (photos + 3) // 4 and sets.augmentation_photos == photos - len(sets.probe)
    assert len(sets.augmentation) == 5 * sets.augmentation_photos  # the photo, a mirror, three crops
    distance = np.linalg.norm(sets.augmentation[:, None, :] - sets.probe[None, :, :], axis=-1)
    assert distance.min() > 1e-3  # no probe photo is among the augmentation photos


def _image_only_task(photos: list[np.ndarray], image_encoder, n: int, seed: int):
    """Texts say nothing; the label is the relation of the two images: the same photo -> Implies, two
    different crops of one photo -> Contradictory, two unrelated photos -> NoEntailment."""
    rng = np.random.default_rng(seed)
    views = [image_encoder.encode(np.stack(_views(p))) for p in photos]  # 0: photo, 2-4: crops
    y = rng.choice(3, n)
    image_1, image_2 = [], []
    for label in y:
        a = rng.integers(len(photos))
        if label == LABEL_INDEX["Implies"]:
            pair = (views[a][0], views[a][0])
        elif label == LABEL_INDEX["Contradictory"]:
            c1, c2 = rng.choice([2, 3, 4], 2, replace=False)
            pair = (views[a][c1], views[a][c2])
        else:
            b = (a + rng.integers(1, len(photos))) % len(photos)
            pair = (views[a][0], views[b][0])
        image_1.append(pair[0])
        image_2.append(pair[1])
    text = np.tile(rng.normal(size=(1, 16)).astype(np.float32), (n, 1))
    emb = PairEmbeddings(text, text.copy(), np.stack(image_1), np.stack(image_2), np.ones((n, 2), np.float32))
    return emb, y


def test_image_path_learns_when_images_carry_the_label(shared_data, image_encoder):
    """Train on pairs of some real photos, judge on pairs of photos never seen: only images can tell."""
    from mmscore.metrics import macro_f1

    photos = [p for _key, p in _decoded_photos(shared_data / "images" / "mediaeval2016", image_encoder.image_size)]
    train_emb, y_train = _image_only_task(photos[:40], image_encoder, 600, seed=0)
    test_emb, y_test = _image_only_task(photos[40:], image_encoder, 300, seed=1)
    emb = PairEmbeddings.concatenate([train_emb, test_emb])
    y = np.concatenate([y_train, y_test])
    train, test = np.arange(600), np.arange(600, 900)
    options = TrainOptions(epochs=40, batch_size=32)
    majority = macro_f1(y[test], np.full(len(test), np.bincount(y[test]).argmax()))
    learned = macro_f1(y[test], head_logits(fit_head(emb, y, train, "cross_entropy", options, 0), emb, test).argmax(1))
    blind = without_images(emb)
    removed = macro_f1(
        y[test], head_logits(fit_head(blind, y, train, "cross_entropy", options, 0), blind, test).argmax(1)
    )
    assert learned > majority + 0.4, (learned, majority)
    assert removed < majority + 0.1, (removed, majority)


def test_without_photos_and_few_images_the_model_is_text_only(tmp_path):
    """The gate: 1 of 18 rows with an image and no --photos -> the card says so and scoring ignores images."""
    from PIL import Image

    from mmscore.images.fetcher import FetchSettings, ImageFetcher
    from mmscore.images.image_cache import ImageCache
    from mmscore.model.card import ModelCard
    from mmscore.model.predictor import Predictor
    from mmscore.training import train_model

    Image.new("RGB", (40, 40), (200, 10, 10)).save(tmp_path / "red.png")
    rows = [
        {"text_1": f"{label} claim {i}", "text_2": f"about {label.lower()} {i}", "label": label, "image_1": ""}
        for label in LABELS
        for i in range(6)
    ]
    rows[0]["image_1"] = "red.png"
    pd.DataFrame(rows).to_csv(tmp_path / "train.csv", index=False)
    fetcher = ImageFetcher(ImageCache(tmp_path / "img"), settings=FetchSettings(offline=True), image_root=tmp_path)
    options = TrainOptions(losses=("cross_entropy",), folds=3, epochs=3, heads=1)
    train_model(tmp_path / "train.csv", tmp_path / "m", fetcher, options=options, cache_root=tmp_path / "emb")
    card = ModelCard.load(tmp_path / "m")
    assert card.image_rows == 1 and card.uses_images is False and card.photo_augmentation == {}
    predictor = Predictor.load(tmp_path / "m")
    rng = np.random.default_rng(0)
    t1, t2, i1, i2 = (rng.normal(size=(8, d)).astype(np.float32) for d in (384, 384, 1280, 1280))
    features = predictor.pair_features(["a"] * 8, ["b"] * 8)

    def logits(image_1, image_2, mask):  # logits, not probabilities: a tiny model's may saturate
        return predictor.head.predict(predictor._head_inputs(t1, t2, image_1, image_2, mask, features), verbose=0)

    with_images = logits(i1, i2, np.ones((8, 2), np.float32))
    np.testing.assert_array_equal(with_images, logits(0 * i1, 0 * i2, np.zeros((8, 2), np.float32)))
    assert np.isfinite(with_images).all()


def test_shipped_model_keeps_its_labels_when_unrelated_photos_are_attached(shared_data, text_encoder, image_encoder):
    """Real tweet pairs, texts only vs the same rows with held-out real photos attached: few labels change."""
    from mmscore.images.fetcher import FetchSettings, ImageFetcher
    from mmscore.images.image_cache import ImageCache
    from mmscore.model.pair_features import pair_features
    from mmscore.model.predictor import Predictor
    from mmscore.training import embed_pairs, read_labelled_pairs

    predictor = Predictor.load()
    assert predictor.card.uses_images and predictor.card.photo_augmentation  # images are on, and were augmented
    df, _ = read_labelled_pairs(shared_data / "tweets" / "tweets_trainval.csv")
    fetcher = ImageFetcher(ImageCache(), settings=FetchSettings(offline=True))
    emb = embed_pairs(df, None, fetcher, text_encoder, image_encoder)  # the session's cache: embedded once
    features = pair_features(df["text_1"], df["text_2"])
    probe = load_photo_sets(shared_data / "images" / "mediaeval2016", image_encoder).probe
    rows = np.arange(len(df))

    def labels(e):
        return predictor.predict_embeddings(e.text_1, e.text_2, e.image_1, e.image_2, e.image_mask, features).argmax(1)

    texts_only = labels(emb)
    for same in (False, True):
        flipped = (labels(probe_photos(emb, rows, probe, seed=7, same=same)) != texts_only).mean()
        assert flipped < 0.1, f"{100 * flipped:.1f}% of labels changed (same photo on both posts: {same})"
