import subprocess

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from conftest import make_fetcher, mmscore_cli, png_bytes

from mmscore.images.fetcher import ImageFetcher
from mmscore.images.image_cache import ImageCache
from mmscore.io.pairs_reader import open_pairs
from mmscore.io.scored_writer import read_run_facts
from mmscore.labels import LABELS, PROB_COLUMNS
from mmscore.model.predictor import Predictor
from mmscore.scoring.chunks import prepare_chunk
from mmscore.scoring.local_engine import score_pairs
from mmscore.scoring.run import ScoreOptions


@pytest.fixture(scope="module")
def predictor(model_dir):
    return Predictor.load(model_dir)


def _mixed_pairs(server, n=45):
    good = [server.image(f"/ok{i}.png", png_bytes((40 * i % 255, 90, 200))) for i in range(5)]
    server.routes["/html.png"] = lambda _n: (200, {"Content-Type": "image/png"}, b"<html></html>")
    refs = [*good, server.url("/gone.png"), server.url("/html.png"), "", None]
    rows = []
    for i in range(n):
        rows.append(
            {
                "id": str(10**18 + i),
                "text_1": "" if i % 11 == 3 else f"Post number {i} about the harbour.",
                "text_2": f"Another post {i % 7} on the harbour.",
                "image_1": refs[i % len(refs)],
                "image_2": refs[(i * 3) % len(refs)],
                "extra": i * 1.5,
            }
        )
    return pd.DataFrame(rows)


def test_order_count_statuses_and_probabilities(tmp_path, image_server, predictor):
    df = _mixed_pairs(image_server)
    df.to_parquet(tmp_path / "in.parquet")
    out = tmp_path / "out.parquet"
    fetcher = make_fetcher(tmp_path)
    summary = score_pairs(open_pairs(tmp_path / "in.parquet"), out, predictor, fetcher, ScoreOptions(8, 2))
    result = pq.read_table(out).to_pandas()
    assert summary.rows == len(result) == len(df)
    assert result["id"].tolist() == df["id"].tolist()
    assert result["extra"].tolist() == df["extra"].tolist()
    assert set(result["pred_label"]) <= set(LABELS)
    np.testing.assert_allclose(result[list(PROB_COLUMNS)].sum(axis=1), 1.0, atol=1e-5)
    for ref, status in zip(df["image_1"], result["image_1_status"], strict=True):
        if not isinstance(ref, str) or not ref:
            assert status == "missing"
        elif ref.endswith("gone.png"):
            assert status == "http_404"
        elif ref.endswith("html.png"):
            assert status == "not_an_image"
        else:
            assert status in ("ok", "cached")
    assert (result["text_status"] == "empty_text_1").sum() == (df["text_1"] == "").sum()
    facts = read_run_facts(out)
    assert facts["rows"] == len(df) and facts["model_id"] == predictor.card.model_id()
    assert not (tmp_path / "out.parquet.parts").exists()


def test_second_run_is_identical_and_fetches_nothing(tmp_path, image_server, predictor):
    df = _mixed_pairs(image_server, 20)
    df.to_parquet(tmp_path / "in.parquet")
    fetcher = make_fetcher(tmp_path)
    score_pairs(open_pairs(tmp_path / "in.parquet"), tmp_path / "a.parquet", predictor, fetcher, ScoreOptions(8, 2))
    hits = dict(image_server.hits)
    score_pairs(open_pairs(tmp_path / "in.parquet"), tmp_path / "b.parquet", predictor, fetcher, ScoreOptions(8, 2))
    a, b = pd.read_parquet(tmp_path / "a.parquet"), pd.read_parquet(tmp_path / "b.parquet")
    pd.testing.assert_frame_equal(a[list(PROB_COLUMNS)], b[list(PROB_COLUMNS)])
    requested_again = {path for path, n in image_server.hits.items() if n > hits.get(path, 0)}
    assert requested_again == {"/gone.png"}  # only the failure is asked again; every image came from the cache
    assert "ok" not in set(b["image_1_status"]) | set(b["image_2_status"])


def test_image_2_is_not_image_1(tmp_path, image_server, predictor):
    """Guards the reference example's bug: image_2 must come from the image_2 column."""
    red, blue = (
        image_server.image("/red.png", png_bytes((255, 0, 0))),
        image_server.image("/blue.png", png_bytes((0, 0, 255))),
    )
    df = pd.DataFrame({"text_1": ["a"], "text_2": ["b"], "image_1": [red], "image_2": [blue]})
    df.to_parquet(tmp_path / "in.parquet")
    table = next(open_pairs(tmp_path / "in.parquet").chunks(8))
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool:
        chunk = prepare_chunk(table, make_fetcher(tmp_path), pool, 32)
    assert chunk.images[0][0][5, 5].tolist() == [255, 0, 0]
    assert chunk.images[1][0][5, 5].tolist() == [0, 0, 255]


def test_missing_images_skip_the_image_encoder_path(tmp_path, predictor):
    """A missing image is masked out: its pixels do not matter (no black-picture features)."""
    import tensorflow as tf

    size = predictor.image_encoder.image_size
    ids, mask = predictor.text_encoder.tokenize(tf.constant(["a post", "another post"]))
    zeros = tf.zeros((1, size, size, 3), tf.uint8)
    noise = tf.constant(np.random.default_rng(0).integers(0, 255, (1, size, size, 3)), tf.uint8)
    absent = tf.zeros((1, 2), tf.float32)
    lexical = predictor.pair_features(["a post"], ["another post"])
    step = predictor.scoring_step
    a = step(ids[:1], mask[:1], ids[1:], mask[1:], zeros, zeros, absent, lexical)[0].numpy()
    b = step(ids[:1], mask[:1], ids[1:], mask[1:], noise, noise, absent, lexical)[0].numpy()
    c = step(ids[:1], mask[:1], ids[1:], mask[1:], noise, noise, tf.ones((1, 2)), lexical)[0].numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_cli_missing_column_is_one_line_exit_2(tmp_path):
    (tmp_path / "bad.csv").write_text("text_1,foo\nx,y\n")
    run = subprocess.run(
        mmscore_cli("score", tmp_path / "bad.csv", "-o", tmp_path / "o.parquet"), capture_output=True, text=True
    )
    assert run.returncode == 2
    assert "missing required column(s) text_2" in run.stderr and "Traceback" not in run.stderr


def test_an_error_while_preparing_rows_names_its_cause(tmp_path, model_dir, monkeypatch):
    """Not the input file's fault, so not "unreadable input": the one line says what failed."""
    from mmscore.errors import ScoringError

    (tmp_path / "a.png").write_bytes(png_bytes())
    frame = pd.DataFrame({"text_1": ["a", "b"], "text_2": ["c", "d"], "image_1": ["a.png", ""]})
    frame.to_csv(tmp_path / "in.csv", index=False)

    def broken(_data, _size):
        raise ZeroDivisionError("image scale is zero")

    monkeypatch.setattr("mmscore.images.loading.decode_image", broken)
    fetcher = ImageFetcher(ImageCache(tmp_path / "cache"), image_root=tmp_path)
    with pytest.raises(ScoringError, match=r"preparing rows failed \(ZeroDivisionError: image scale is zero\)"):
        score_pairs(open_pairs(tmp_path / "in.csv"), tmp_path / "out.parquet", Predictor.load(model_dir), fetcher)
