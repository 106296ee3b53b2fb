"""Input faults: every malformed, odd or hostile input row ends as an output row with a status, or the
whole file is refused with one line before any work is done."""

import decimal
import subprocess
from datetime import datetime

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import mmscore_cli

from mmscore.errors import InputError
from mmscore.images.fetcher import ImageFetcher
from mmscore.images.image_cache import ImageCache
from mmscore.io.pairs_reader import open_pairs
from mmscore.model.predictor import Predictor
from mmscore.scoring.local_engine import score_pairs
from mmscore.scoring.run import ScoreOptions


@pytest.fixture(scope="module")
def predictor(model_dir):
    return Predictor.load(model_dir)


def _score(tmp_path, predictor, path, **options):
    out = tmp_path / "out.parquet"
    fetcher = ImageFetcher(ImageCache(tmp_path / "cache"))
    score_pairs(open_pairs(path), out, predictor, fetcher, ScoreOptions(batch_size=4, chunk_batches=2, **options))
    return pq.read_table(out)


def test_hostile_csv_rows_each_get_a_row_and_a_status(tmp_path, predictor):
    big = "word " * 200_000  # a 1 MB text
    lines = [
        b"id,text_1,text_2,extra",
        b"1375936088968200205,plain,plain,x",
        b"2,bad \xff\xfe bytes,fine,x",  # invalid UTF-8
        b"3,too,many,fields,here",  # wrong field count: the cells that line up are kept
        b"4,too few",  # the missing cells are null
        b'5,"stray "quote" inside,b,x',  # bad quoting: a row of nulls marks where it was
        b"6,after the damage,still read,x",
        b"7,,empty text_1,x",
        b"8,dup,dup,x",
        b"8,dup,dup,x",
        b'9,"multi\nline",b,x',
        b"10," + big.encode() + b",b,x",
        b"",  # blank line: not a row
        b"11,last,row,x",
    ]
    path = tmp_path / "hostile.csv"
    path.write_bytes(b"\n".join(lines) + b"\n")
    table = _score(tmp_path, predictor, path)
    rows = table.to_pylist()
    assert [r["id"] for r in rows] == [
        "1375936088968200205", "2", "3", "4", None, "6", "7", "8", "8", "9", "10", "11"
    ]  # fmt: skip
    assert [r["text_status"] for r in rows] == [
        "ok", "invalid_utf8", "malformed_row", "malformed_row", "malformed_row",
        "ok", "empty_text_1", "ok", "ok", "ok", "ok", "ok",
    ]  # fmt: skip
    assert rows[1]["text_1"] == "bad \ufffd\ufffd bytes"
    assert rows[7]["prob_implies"] == rows[8]["prob_implies"]  # duplicates scored alike, both kept
    assert len(rows[10]["text_1"]) == len(big)  # carried through whole, truncated only for the model
    assert all(abs(r["prob_contradictory"] + r["prob_implies"] + r["prob_noentailment"] - 1) < 1e-5 for r in rows)
    assert "__mmscore_row_note__" not in table.column_names


def test_odd_parquet_column_types_are_carried_unchanged(tmp_path, predictor):
    n = 5
    table = pa.table(
        {
            "id": pa.array([10**18 + i for i in range(n)], pa.int64()),
            "text_1": pa.array(["a", None, "c", "", "e"]).dictionary_encode(),
            "text_2": pa.array(["x"] * n, pa.large_string()),
            "tags": pa.array([[1, 2], [], None, [3], [4, 5, 6]], pa.list_(pa.int32())),
            "meta": pa.array([{"k": i, "v": str(i)} for i in range(n)]),
            "when": pa.array([datetime(2021, 1, i + 1) for i in range(n)], pa.timestamp("ms", tz="UTC")),
            "price": pa.array([decimal.Decimal("1.25")] * n, pa.decimal128(10, 2)),
            "blob": pa.array([b"\x00\xff"] * n, pa.binary()),
            "flag": pa.array([True, False, None, True, False]),
            "nothing": pa.nulls(n),
        }
    )
    pq.write_table(table, tmp_path / "odd.parquet")
    result = _score(tmp_path, predictor, tmp_path / "odd.parquet")
    for name in table.column_names:
        if name != "text_1":
            assert result.column(name).combine_chunks().equals(table.column(name).combine_chunks()), name
    assert result.column("text_1").to_pylist() == ["a", None, "c", "", "e"]
    assert result.column("text_status").to_pylist() == ["ok", "empty_text_1", "ok", "empty_text_1", "ok"]


@pytest.mark.parametrize("kind", ["header_only_csv", "zero_row_parquet"])
def test_inputs_without_rows_give_an_empty_output_with_the_schema(tmp_path, predictor, kind):
    if kind == "header_only_csv":
        path = tmp_path / "empty.csv"
        path.write_text("id,text_1,text_2\n")
    else:
        path = tmp_path / "empty.parquet"
        pq.write_table(pa.table({"id": pa.array([], pa.int64()), "text_1": pa.array([], pa.string()),
                                 "text_2": pa.array([], pa.string())}), path)  # fmt: skip
    result = _score(tmp_path, predictor, path)
    assert result.num_rows == 0
    assert {"id", "pred_label", "prob_implies", "image_1_status", "text_status"} <= set(result.column_names)


def test_text_column_of_the_wrong_type_is_refused_in_one_line(tmp_path):
    pq.write_table(pa.table({"text_1": [{"a": 1}], "text_2": ["x"]}), tmp_path / "struct.parquet")
    with pytest.raises(InputError, match="column text_1 holds struct"):
        open_pairs(tmp_path / "struct.parquet")


def test_a_binary_file_named_csv_is_refused_or_flagged_never_a_traceback(tmp_path, model_dir):
    path = tmp_path / "photo.csv"
    path.write_bytes(bytes(range(256)) * 40)
    run = subprocess.run(
        mmscore_cli("score", path, "-o", tmp_path / "o.parquet", "--model", model_dir),
        capture_output=True, text=True,
    )  # fmt: skip
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert "missing required column(s)" in run.stderr
