"""Edges where an off-by-one hides: thresholds at exactly their cut, counters one short of their limit, the
output's column types, every probability column restored to its row, folders of more than ten parts, and a
linked folder inside the image root. Each is fast and local; each kills a planted bug (tests/mutation/run.py).
"""

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import make_fetcher, png_bytes

from mmscore.labels import LABELS, PROB_COLUMNS

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"
# Cuts chosen to be exact in float32 (0.6 is not: float32(0.6) > 0.6, so a row at "0.6" sits on either side).
CUT = np.float32(0.625)
JUST_BELOW = np.nextafter(CUT, np.float32(0))


def _scored_file(path: Path, top_probabilities: list[float]) -> Path:
    """A scored Parquet file whose rows have these max probabilities (rest split evenly, float32)."""
    top = np.asarray(top_probabilities, np.float32)
    rest = (1 - top) / 2
    probs = np.stack([top, rest, rest], 1).astype(np.float32)
    columns = {"id": [str(i) for i in range(len(top))], "text_1": ["a"] * len(top), "text_2": ["b"] * len(top)}
    table = pa.table(columns)
    table = table.append_column("pred_label", pa.array([LABELS[0]] * len(top)))
    for i, name in enumerate(PROB_COLUMNS):
        table = table.append_column(name, pa.array(probs[:, i], pa.float32()))
    for name in ("image_1_status", "image_2_status", "text_status"):
        table = table.append_column(name, pa.array(["ok"] * len(top)))
    pq.write_table(table, path)
    return path


def test_low_confidence_cut_is_strictly_below_the_threshold_in_report_and_review(tmp_path):
    from mmscore.report import build_report, write_review_queue

    scored = _scored_file(tmp_path / "scored.parquet", [CUT, JUST_BELOW, 0.75, 0.5])
    report = build_report(scored, low_confidence=float(CUT))
    assert report.low_confidence == 2  # JUST_BELOW and 0.5; a row exactly at the cut is confident enough
    queue = write_review_queue(scored, tmp_path / "review.csv", below=float(CUT))
    assert queue.rows == 2
    assert pd.read_csv(tmp_path / "review.csv", dtype=str)["id"].tolist() == ["3", "1"]  # least confident first


def test_breaker_stays_closed_one_failure_short_and_a_success_resets_the_count():
    from mmscore.images.host_health import HostBreaker

    breaker = HostBreaker(threshold=3, cooldown=60)
    for _ in range(2):
        breaker.record("dead.example", unreachable=True)
    assert not breaker.is_open("dead.example") and breaker.open_hosts() == []
    breaker.record("dead.example", unreachable=False)  # it answered: the count starts again
    for _ in range(2):
        breaker.record("dead.example", unreachable=True)
    assert not breaker.is_open("dead.example")
    breaker.record("dead.example", unreachable=True)
    assert breaker.is_open("dead.example") and breaker.open_hosts() == ["dead.example"]
    assert not breaker.is_open("other.example")


def test_size_cap_admits_exactly_max_bytes_over_http_and_from_disk(tmp_path, image_server):
    body = png_bytes(size=(40, 30))
    url = image_server.image("/exact.png", body)
    (tmp_path / "exact.png").write_bytes(body)
    for cap, status in ((len(body), "ok"), (len(body) - 1, "too_large")):
        fetcher = make_fetcher(tmp_path / f"cap{cap}", max_bytes=cap, image_root=tmp_path)
        assert fetcher.fetch(url).status == status, (cap, "http")
        assert fetcher.fetch("exact.png").status == status, (cap, "disk")
        fetcher.close()


def test_pixel_limit_admits_exactly_max_pixels():
    from mmscore.images.decode import decode_image

    data = png_bytes(size=(64, 48))
    assert decode_image(data, 32, max_pixels=64 * 48).status == "ok"
    assert decode_image(data, 32, max_pixels=64 * 48 - 1).status == "too_many_pixels"


def test_redirects_admit_exactly_max_redirects(tmp_path, image_server):
    image_server.image("/hop0", png_bytes())
    for hop in range(1, 5):
        image_server.routes[f"/hop{hop}"] = lambda _n, to=f"/hop{hop - 1}": (302, {"Location": to}, b"")
    fetcher = make_fetcher(tmp_path, max_redirects=3)
    assert fetcher.fetch(image_server.url("/hop3")).status == "ok"  # three hops
    assert fetcher.fetch(image_server.url("/hop4")).status == "too_many_redirects"
    fetcher.close()


def test_a_linked_folder_inside_the_image_root_that_points_outside_is_blocked(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "elsewhere"
    root.mkdir()
    outside.mkdir()
    (outside / "photo.png").write_bytes(png_bytes())
    (root / "linked").symlink_to(outside, target_is_directory=True)
    (root / "inner").mkdir()
    (root / "inner" / "photo.png").write_bytes(png_bytes())
    (root / "linked_inner").symlink_to(root / "inner", target_is_directory=True)
    fetcher = make_fetcher(tmp_path / "work", image_root=root)
    assert fetcher.fetch("linked/photo.png").status == "blocked_path"
    assert fetcher.fetch(str(root / "linked" / "photo.png")).status == "blocked_path"
    assert fetcher.fetch("linked_inner/photo.png").status == "ok"  # a link that stays inside is fine
    fetcher.close()


def test_restoring_input_order_moves_every_probability_column_with_its_row():
    from mmscore.scoring.chunks import PreparedChunk, scored_table

    n = 7
    order = np.array([3, 0, 6, 1, 5, 2, 4])
    truth = np.random.default_rng(0).dirichlet(np.ones(3), n).astype(np.float32)  # each cell distinct
    table = pa.table({"id": [str(i) for i in range(n)], "text_1": ["a"] * n, "text_2": ["b"] * n})
    statuses = {name: ["ok"] * n for name in ("image_1_status", "image_2_status", "text_status")}
    chunk = PreparedChunk(table, [], np.zeros((n, 2), np.float32), statuses, np.zeros((n, 0), np.float32), order)
    restored = chunk.in_input_order(truth[order])  # what the model returns: rows in batch order
    np.testing.assert_array_equal(restored, truth)
    out = scored_table(chunk, restored)
    got = np.stack([out.column(name).to_numpy() for name in PROB_COLUMNS], 1)
    np.testing.assert_array_equal(got, truth)
    assert out.column("pred_label").to_pylist() == [LABELS[i] for i in truth.argmax(1)]


@pytest.fixture(scope="module")
def scorer(model_dir):
    import mmscore

    return mmscore.Scorer(model_dir, image_root=SAMPLE, precision="float32", batch_size=1)  # 8-row chunks


def test_scored_output_column_types_are_the_contract(scorer, tmp_path):
    """Asserted on a local run (only the slow Ray test used to notice a float64 probability column)."""
    scorer.score_file(SAMPLE / "pairs.csv", tmp_path / "out.parquet", limit=10)
    schema = pq.read_schema(tmp_path / "out.parquet")
    for name in PROB_COLUMNS:
        assert schema.field(name).type == pa.float32(), name
    for name in ("pred_label", "image_1_status", "image_2_status", "text_status", "id_1", "text_1", "label"):
        assert schema.field(name).type == pa.string(), name
    assert schema.field("in_domain_score").type == pa.float32() and schema.field("in_domain").type == pa.bool_()
    frame = scorer.score_frame(pd.read_csv(SAMPLE / "pairs.csv", dtype=str).head(3))
    assert all(frame[name].dtype == np.float32 for name in PROB_COLUMNS)


def test_a_folder_of_more_than_ten_parts_is_read_in_row_order_by_report_and_review(scorer, tmp_path):
    """Eleven parts: part names must sort as numbers do (part-10 after part-9), in report and --review.
    Every row holds the same pair, so equal confidences leave the review queue in file order."""
    from mmscore.report import build_report, write_review_queue

    one = pd.read_csv(SAMPLE / "pairs.csv", dtype=str).iloc[[0]]
    rows = pd.concat([one] * 84, ignore_index=True)
    rows["id_1"] = [f"row{i:03d}" for i in range(len(rows))]
    rows.to_parquet(tmp_path / "same.parquet", index=False)
    scorer.score_file(tmp_path / "same.parquet", output_dir=tmp_path / "parts")
    assert len(list((tmp_path / "parts").glob("part-*.parquet"))) == 11
    report = build_report(tmp_path / "parts")
    assert report.rows == 84
    queue = write_review_queue(tmp_path / "parts", tmp_path / "review.csv", below=None)
    assert queue.rows == 84
    assert pd.read_csv(tmp_path / "review.csv", dtype=str)["id_1"].tolist() == rows["id_1"].tolist()
