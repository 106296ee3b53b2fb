"""INPUT and OUTPUT as S3 URIs, through pyarrow.fs, against a real S3-compatible server (moto) that the test
starts on 127.0.0.1; credentials and endpoint come from the standard AWS_* variables, as a user's would."""

from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from conftest import s3_filesystem

pytest.importorskip("moto", reason="moto[server] is a dev dependency (pip install -e '.[dev]')")

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"


@pytest.fixture(scope="module")
def bucket_with_pairs(s3_endpoint):
    """``s3://pairs/in/`` holding the sample pairs split over three Parquet files (and one file to ignore)."""
    fs = s3_filesystem(s3_endpoint)
    fs.create_dir("pairs")
    frame = pd.read_csv(SAMPLE / "pairs.csv", dtype=str)
    for i, rows in enumerate((frame.iloc[:7], frame.iloc[7:8], frame.iloc[8:])):
        with fs.open_output_stream(f"pairs/in/part-{i}.parquet") as out:
            pq.write_table(__import__("pyarrow").Table.from_pandas(rows, preserve_index=False), out)
    with fs.open_output_stream("pairs/in/README.txt") as out:
        out.write(b"not a table")
    return "s3://pairs/in/", frame


def test_scoring_an_s3_prefix_equals_scoring_the_same_rows_locally(bucket_with_pairs, model_dir, tmp_path):
    import mmscore

    uri, frame = bucket_with_pairs
    local = tmp_path / "pairs.parquet"
    frame.to_parquet(local, index=False)
    scorer = mmscore.Scorer(model_dir, image_root=SAMPLE, precision="float32", batch_size=4)
    scorer.score_file(uri, tmp_path / "from_s3.parquet")
    scorer.score_file(local, tmp_path / "from_file.parquet")
    got, expected = (pd.read_parquet(tmp_path / f"{name}.parquet") for name in ("from_s3", "from_file"))
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    assert (got["image_1_status"] == "ok").sum() >= 15  # relative image paths were read under the image root


def test_a_glob_on_s3_and_a_missing_prefix(bucket_with_pairs):
    from mmscore.errors import InputError
    from mmscore.io.pairs_reader import open_pairs

    uri, frame = bucket_with_pairs
    source = open_pairs(uri + "part-[02].parquet")
    assert [f.name for f in source.files] == [uri + "part-0.parquet", uri + "part-2.parquet"]
    assert source.num_rows == len(frame) - 1
    with pytest.raises(InputError, match="s3://pairs/nothing/: no such file"):
        open_pairs("s3://pairs/nothing/")


@pytest.fixture(scope="module")
def out_bucket(s3_endpoint):
    fs = s3_filesystem(s3_endpoint)
    fs.create_dir("scored")
    return fs


def test_output_file_and_folder_on_s3_equal_the_local_output(bucket_with_pairs, out_bucket, model_dir, tmp_path):
    """-o and --output-dir as s3:// URIs: the same rows, order and schema as a local file; parts cleaned up;
    run facts and `mmscore report` read from the bucket."""
    import pyarrow.fs as pafs

    import mmscore
    from mmscore.io.scored_writer import read_run_facts
    from mmscore.report import build_report

    uri, frame = bucket_with_pairs
    scorer = mmscore.Scorer(model_dir, image_root=SAMPLE, precision="float32", batch_size=1)  # 8-row chunks
    scorer.score_file(uri, tmp_path / "local.parquet")
    scorer.score_file(uri, "s3://scored/run/out.parquet")
    scorer.score_file(uri, output_dir="s3://scored/run/folder/")
    expected = pq.read_table(tmp_path / "local.parquet")
    as_file = pq.read_table("scored/run/out.parquet", filesystem=out_bucket)
    assert as_file.equals(expected)  # values, order, schema (the run facts differ only in timings)
    listed = out_bucket.get_file_info(pafs.FileSelector("scored/run", recursive=True))
    assert sorted(i.path for i in listed if i.type == pafs.FileType.File) == [
        "scored/run/folder/_mmscore.json",
        "scored/run/folder/_mmscore_run.json",
        *(f"scored/run/folder/part-{i:06d}.parquet" for i in range(-(-len(frame) // 8))),  # 8-row parts
        "scored/run/out.parquet",
    ]  # no out.parquet.parts left
    as_folder = pq.read_table("scored/run/folder", filesystem=out_bucket)
    pd.testing.assert_frame_equal(as_folder.to_pandas(), expected.to_pandas(), check_exact=True)
    assert read_run_facts("s3://scored/run/out.parquet")["rows"] == len(frame)
    assert (
        build_report("s3://scored/run/folder").to_json()["predicted_counts"]
        == (build_report(tmp_path / "local.parquet").to_json()["predicted_counts"])
    )


def test_s3_parts_resume_and_a_failed_publish_leaves_no_torn_output(out_bucket):
    """A run killed after two parts resumes from them; a publish that fails part-way (a part vanished) leaves
    no OUTPUT object, although Arrow completes an upload when its stream closes; a resume then finishes."""
    import pyarrow as pa
    import pyarrow.fs as pafs

    from mmscore.errors import OutputError
    from mmscore.io.scored_writer import ScoredWriter

    out, table = "s3://scored/resumed.parquet", pa.table({"row": list(range(10)), "text_1": ["t"] * 10})
    first = ScoredWriter(out, {"run": 1}, resume=False)
    first.write(table.slice(0, 4))
    first.write(table.slice(4, 3))
    second = ScoredWriter(out, {"run": 1}, resume=True)
    assert second.rows_done == 7
    second.write(table.slice(7))
    out_bucket.delete_file("scored/resumed.parquet.parts/part-000001.parquet")
    with pytest.raises(OutputError, match="cannot write s3://scored/resumed.parquet"):
        second.finish({"rows": 10}, table.schema)
    assert out_bucket.get_file_info("scored/resumed.parquet").type == pafs.FileType.NotFound
    third = ScoredWriter(out, {"run": 1}, resume=True)
    assert third.rows_done == 4  # only the contiguous parts count
    third.write(table.slice(4))
    third.finish({"rows": 10}, table.schema)
    assert pq.read_table("scored/resumed.parquet", filesystem=out_bucket).replace_schema_metadata().equals(table)


def test_an_s3_output_in_a_missing_bucket_stops_before_scoring(s3_endpoint):
    from mmscore.errors import InputError
    from mmscore.scorer import scored_output

    with pytest.raises(InputError, match="s3://no-such-bucket/out.parquet: no such bucket"):
        scored_output("s3://no-such-bucket/out.parquet")
    with pytest.raises(InputError, match="no such bucket"):
        scored_output(None, "s3://no-such-bucket/folder")


def test_the_cli_writes_and_reports_s3_uris(bucket_with_pairs, out_bucket, model_dir):
    """The URIs reach the storage layer as written (a path type would fold "s3://" into "s3:/")."""
    from typer.testing import CliRunner

    from mmscore.cli import app

    uri, frame = bucket_with_pairs
    args = ["--model", str(model_dir), "--image-root", str(SAMPLE), "--precision", "float32"]
    scored = CliRunner().invoke(app, ["score", uri, "-o", "s3://scored/cli/out.parquet", *args])
    assert scored.exit_code == 0, scored.output
    assert pq.read_metadata("scored/cli/out.parquet", filesystem=out_bucket).num_rows == len(frame)
    report = CliRunner().invoke(app, ["report", "s3://scored/cli/out.parquet", "--json"])
    assert report.exit_code == 0 and f'"rows": {len(frame)}' in report.output, report.output


def test_the_cli_trains_from_an_s3_uri_and_from_stdin(s3_endpoint, tmp_path):
    """`mmscore train` reads what `mmscore score` reads: an s3:// URI (DATA typed as a path once folded
    "s3://" into "s3:/") and `-`; the card hashes the bytes that were read."""
    import hashlib
    import json

    from typer.testing import CliRunner

    from mmscore.cli import app

    fs = s3_filesystem(s3_endpoint)
    fs.create_dir("labels")
    raw = (SAMPLE / "pairs.csv").read_bytes()
    with fs.open_output_stream("labels/train.csv") as out:
        out.write(raw)
    quick = ["--folds", "2", "--epochs", "2", "--heads", "1", "--image-root", str(SAMPLE), "--offline"]
    for data, stdin, out in (("s3://labels/train.csv", None, "from_s3"), ("-", raw, "from_stdin")):
        result = CliRunner().invoke(app, ["train", data, "--out", str(tmp_path / out), *quick], input=stdin)
        assert result.exit_code == 0, result.output
        card = json.loads((tmp_path / out / "model_card.json").read_text())
        assert card["training_rows"] == len(pd.read_csv(SAMPLE / "pairs.csv"))
        assert card["training_data_sha256"] == hashlib.sha256(raw).hexdigest()
    missing = CliRunner().invoke(app, ["train", "s3://labels/absent.csv", "--out", str(tmp_path / "no")])
    assert missing.exit_code != 0 and "s3://labels/absent.csv: no such file" in missing.output, missing.output
