"""Behaviour that a one-line bug would break silently: which input feeds which slot, which row gets which
probabilities, which images count as seen, and the decoder's own pixel limit."""

import io
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import png_bytes
from PIL import Image

from mmscore.images.decode import MAX_PIXELS, decode_image
from mmscore.images.fetcher import FetchSettings, ImageFetcher
from mmscore.images.image_cache import ImageCache
from mmscore.io.pairs_reader import open_pairs
from mmscore.labels import PROB_COLUMNS
from mmscore.model.predictor import Predictor
from mmscore.scoring.chunks import prepare_chunk
from mmscore.scoring.local_engine import score_pairs
from mmscore.scoring.run import ScoreOptions


def test_the_decoders_own_pixel_limit_refuses_what_pillow_would_decode():
    """50 M pixels: under Pillow's bomb guard (~89 M), over mmscore's 40 M limit."""
    assert Image.MAX_IMAGE_PIXELS > 50_000_000 > MAX_PIXELS
    buf = io.BytesIO()
    Image.new("1", (10_000, 5_000)).save(buf, "PNG")
    assert len(buf.getvalue()) < 200_000
    assert decode_image(buf.getvalue(), 32).status == "too_many_pixels"
    small = io.BytesIO()
    Image.new("1", (6_000, 6_000)).save(small, "PNG")  # 36 M pixels: allowed
    assert decode_image(small.getvalue(), 32).status == "ok"


def test_length_order_sorts_by_the_longer_text_and_probabilities_come_back_in_input_order():
    from mmscore.scoring.chunks import PreparedChunk, length_order

    text_1 = np.array(["a" * 50, "bb", "c" * 10, "d"], dtype=object)
    text_2 = np.array(["x", "y" * 30, "z", "w"], dtype=object)
    order = length_order(text_1, text_2)
    assert order.tolist() == [3, 2, 1, 0]
    chunk = PreparedChunk(pa.table({"a": [1, 2, 3, 4]}), [], None, {}, None, order)
    probs_in_model_order = np.array([[3.0], [2.0], [1.0], [0.0]])  # row 3 was scored first, ...
    assert chunk.in_input_order(probs_in_model_order).ravel().tolist() == [0.0, 1.0, 2.0, 3.0]


def test_prepare_chunk_masks_exactly_the_images_that_decoded(tmp_path):
    (tmp_path / "red.png").write_bytes(png_bytes((250, 0, 0)))
    (tmp_path / "blue.png").write_bytes(png_bytes((0, 0, 250)))
    (tmp_path / "page.png").write_bytes(b"<html>not an image</html>")
    table = pa.table(
        {
            "text_1": ["a", "b", "c", "d"],
            "text_2": ["e", "f", "g", "h"],
            "image_1": ["red.png", "", "nope.png", "page.png"],
            "image_2": ["blue.png", "red.png", None, "blue.png"],
        }
    )
    fetcher = ImageFetcher(ImageCache(tmp_path / "c"), settings=FetchSettings(offline=True), image_root=tmp_path)
    with ThreadPoolExecutor(4) as pool:
        chunk = prepare_chunk(table, fetcher, pool, 16)
    assert chunk.image_mask.tolist() == [[1, 1], [0, 1], [0, 0], [0, 1]]
    assert chunk.statuses["image_1_status"] == ["ok", "missing", "not_found", "not_an_image"]
    assert chunk.statuses["image_2_status"] == ["ok", "ok", "missing", "ok"]
    # pixels where the mask says so, in the right slot; zeros elsewhere
    assert chunk.images[0][0][..., 0].mean() > 200 and chunk.images[1][0][..., 2].mean() > 200
    assert chunk.images[1][1][..., 0].mean() > 200 and not chunk.images[0][1].any()
    assert not chunk.images[0][2].any() and not chunk.images[0][3].any()


ROWS = 6


def _score(tmp_path, name, model_dir, changes=None) -> np.ndarray:
    """Score six pairs (with two images each), some cells changed; return the probabilities by row."""
    for colour, file in (((250, 0, 0), "red.png"), ((0, 0, 250), "blue.png"), ((0, 200, 0), "green.png")):
        (tmp_path / file).write_bytes(png_bytes(colour, size=(40, 40)))
    frame = pd.DataFrame(
        {
            # longest first: the pipeline batches by length, so rows are permuted inside the chunk and must come back
            "text_1": [
                f"The river rose {i} metres overnight in town {i}." + " Again." * (ROWS - i) for i in range(ROWS)
            ],
            "text_2": [f"Officials say town {i} is flooded after the rain." for i in range(ROWS)],
            "image_1": ["red.png"] * ROWS,
            "image_2": ["blue.png"] * ROWS,
        }
    )
    for (column, row), value in (changes or {}).items():
        frame.loc[row, column] = value
    frame.to_csv(tmp_path / f"{name}.csv", index=False)
    fetcher = ImageFetcher(ImageCache(tmp_path / "cache"), image_root=tmp_path)
    out = tmp_path / f"{name}.parquet"
    score_pairs(
        open_pairs(tmp_path / f"{name}.csv"), out, Predictor.load(model_dir), fetcher, ScoreOptions(batch_size=4)
    )
    return pq.read_table(out, columns=list(PROB_COLUMNS)).to_pandas().to_numpy()


@pytest.fixture(scope="module")
def baseline(tmp_path_factory, model_dir):
    return _score(tmp_path_factory.mktemp("base"), "base", model_dir)


@pytest.mark.parametrize(
    "change",
    [
        {("text_2", 3): "A completely different statement about the price of bread."},
        {("text_1", 1): "Nothing happened anywhere today."},
        {("image_2", 4): "green.png"},
        {("image_1", 2): "green.png"},
    ],
    ids=["text_2", "text_1", "image_2", "image_1"],
)
def test_changing_one_cell_moves_that_rows_probabilities_and_no_other(tmp_path, model_dir, baseline, change):
    """Each input slot reaches the model (a text_1/text_2 or image_1/image_2 mix-up would leave the change
    unseen), and scores land on their own row (batch 4: rows cross a batch boundary)."""
    probs = _score(tmp_path, "changed", model_dir, change)
    (_column, row), *_ = change
    moved = np.abs(probs - baseline).max(1)
    assert moved[row] > 1e-4, "the changed cell did not reach the model"
    assert np.all(np.delete(moved, row) < 1e-6), f"other rows moved: {moved}"


def test_the_scoring_step_sees_photos_and_texts_as_the_encoders_do(model_dir, text_encoder, image_encoder):
    """The compiled scoring step (uint8 pixels in) must give the logits of the head on the encoders' own
    outputs: a wrong pixel range (the reference example's [0, 1] vs [0, 255] bug) or swapped slots would not."""
    from mmscore.doctor import load_photo, sample_photo_path

    predictor = Predictor.load(model_dir)
    photos = [load_photo(sample_photo_path(name), 224) for name in ("coffee.png", "chelsea.png")]
    pixels = [np.round(p * 255).astype(np.uint8)[None] for p in photos]
    texts_1, texts_2 = ["A cup of coffee on the table."], ["A cat sleeps on the sofa."]
    ids_1, mask_1 = text_encoder.tokenize(texts_1)
    ids_2, mask_2 = text_encoder.tokenize(texts_2)
    mask = np.ones((1, 2), np.float32)
    none = np.zeros((1, 0), np.float32)
    stepped, vectors_1, vectors_2 = predictor.scoring_step(
        ids_1, mask_1, ids_2, mask_2, pixels[0], pixels[1], mask, none
    )
    stepped = stepped.numpy()
    # the text vectors the step returns (for the in-domain score) are each text's own
    np.testing.assert_allclose(vectors_1.numpy(), text_encoder.encode(texts_1), atol=1e-4)
    np.testing.assert_allclose(vectors_2.numpy(), text_encoder.encode(texts_2), atol=1e-4)
    features = image_encoder.encode(np.concatenate(pixels))
    direct = predictor.head.predict(
        predictor._head_inputs(
            text_encoder.encode(texts_1), text_encoder.encode(texts_2), features[:1], features[1:], mask, none
        ),
        verbose=0,
    )
    np.testing.assert_allclose(stepped, direct, atol=2e-3)
    swapped = predictor.scoring_step(ids_1, mask_1, ids_2, mask_2, pixels[1], pixels[0], mask, none)[0].numpy()
    assert np.abs(swapped - stepped).max() > 1e-3  # the two image slots are not interchangeable
