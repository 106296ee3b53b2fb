"""``--output-dir``: the output kept as a folder of ordered Parquet parts holds exactly the rows, order and
schema of the single output file, reads back as one table (pandas, ``mmscore report``), resumes, and never
clears a folder mmscore did not write."""

import tempfile
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from mmscore.cli import app
from mmscore.errors import ResumeMismatch
from mmscore.io.scored_writer import ScoredOutput, ScoredWriter, read_run_facts
from mmscore.report import build_report, write_review_queue

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"
# The first 20 sample pairs (chunks of 8 rows: three parts, the last short), written once for this module.
TWENTY = Path(tempfile.mkdtemp(prefix="mmscore-twenty-")) / "pairs.csv"
pd.read_csv(SAMPLE / "pairs.csv", dtype=str).head(20).to_csv(TWENTY, index=False)


@pytest.fixture(scope="module")
def scored(model_dir, tmp_path_factory):
    """The sample pairs scored once into a file and once into a folder (chunks of 8 rows: three parts)."""
    import mmscore

    root = tmp_path_factory.mktemp("scored")
    scorer = mmscore.Scorer(model_dir, image_root=SAMPLE, precision="float32", batch_size=1)
    scorer.score_file(TWENTY, root / "one.parquet")
    scorer.score_file(TWENTY, output_dir=root / "parts")
    return scorer, root / "one.parquet", root / "parts"


def test_the_folder_holds_the_files_rows_in_order_with_the_same_schema(scored):
    _scorer, file, folder = scored
    parts = [f"part-{i:06d}.parquet" for i in range(3)]
    assert sorted(p.name for p in folder.iterdir()) == ["_mmscore.json", "_mmscore_run.json", *parts]
    expected = pd.read_parquet(file)
    assert len(expected) == 20
    pd.testing.assert_frame_equal(pd.read_parquet(folder), expected, check_exact=True)
    for name in parts:
        assert pq.read_schema(folder / name).remove_metadata().equals(pq.read_schema(file).remove_metadata())
    assert read_run_facts(folder)["rows"] == read_run_facts(file)["rows"] == 20


def test_report_and_review_queue_read_the_folder_like_the_file(scored, tmp_path):
    _scorer, file, folder = scored
    from_file, from_folder = build_report(file).to_json(), build_report(folder).to_json()
    keys = (
        "rows",
        "predicted_counts",
        "confidence_histogram",
        "confidence_quantiles",
        "image_status_counts",
        "metrics",
    )
    for key in keys:
        assert from_folder[key] == from_file[key], key
    assert from_folder["run"]["rows"] == 20
    write_review_queue(file, tmp_path / "a.csv", top=7)
    write_review_queue(folder, tmp_path / "b.csv", top=7)
    assert (tmp_path / "a.csv").read_text() == (tmp_path / "b.csv").read_text()


def test_a_new_run_into_the_folder_replaces_every_part_of_the_old_one(scored, tmp_path):
    scorer, file, folder = scored
    again = tmp_path / "again"
    scorer.score_file(TWENTY, output_dir=again)
    (again / ".4242-0.part-000007.parquet").write_bytes(b"a killed writer's temporary file")
    scorer.score_file(TWENTY, output_dir=again, limit=5)  # one part now, not three
    assert sorted(p.name for p in again.iterdir() if "part-" in p.name) == ["part-000000.parquet"]
    pd.testing.assert_frame_equal(pd.read_parquet(again), pd.read_parquet(file).head(5), check_exact=True)
    scorer.score_file(TWENTY, output_dir=again, limit=0)  # no rows: still a table with the columns
    empty = pd.read_parquet(again)
    assert len(empty) == 0 and list(empty.columns) == list(pd.read_parquet(file).columns)


def test_part_rows_are_rounded_up_to_whole_chunks_and_change_no_value(scored, tmp_path):
    scorer, file, _folder = scored
    scorer.score_file(TWENTY, output_dir=tmp_path / "big", part_rows=10)  # two 8-row chunks a part
    sizes = [pq.ParquetFile(p).metadata.num_rows for p in sorted((tmp_path / "big").glob("part-*"))]
    assert sizes == [16, 4] and read_run_facts(tmp_path / "big")["part_rows"] == 16
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "big"), pd.read_parquet(file), check_exact=True)
    (tmp_path / "big" / "part-000001.parquet").unlink()  # as if killed after the first part
    summary = scorer.score_file(TWENTY, output_dir=tmp_path / "big", part_rows=10, resume=True)
    assert summary.resumed_rows == 16
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "big"), pd.read_parquet(file), check_exact=True)


def _rows(n: int) -> pa.Table:
    return pa.table({"row": list(range(n)), "text_1": [f"t{i}" for i in range(n)]})


def test_an_interrupted_folder_resumes_from_its_whole_parts(tmp_path):
    target = ScoredOutput(str(tmp_path / "out"), folder=True)
    table = _rows(10)
    first = ScoredWriter(target, {"run": 1}, resume=False)
    first.write(table.slice(0, 4))
    first.write(table.slice(4, 3))  # killed here: parts and the run record, no facts yet
    assert not (tmp_path / "out" / "_mmscore.json").exists()
    with pytest.raises(ResumeMismatch):
        ScoredWriter(target, {"run": 2}, resume=True)
    resumed = ScoredWriter(target, {"run": 1}, resume=True)
    assert resumed.rows_done == 7
    resumed.write(table.slice(7))
    resumed.finish({"rows": 10}, table.schema)
    assert pq.read_table(tmp_path / "out").equals(table)
    assert read_run_facts(tmp_path / "out") == {"rows": 10}


def test_output_choice_errors_are_one_line_before_the_model_loads(tmp_path):
    (tmp_path / "pairs.csv").write_text("text_1,text_2\na,b\n")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("a user's own file")
    pairs, model = str(tmp_path / "pairs.csv"), ["--model", str(tmp_path / "no-model")]
    cases = {
        "give either an output file": ["score", pairs, *model],
        "give either an output file ": ["score", pairs, "-o", str(tmp_path / "o.parquet"), "--output-dir", "d"],
        "is a file; --output-dir needs a folder": ["score", pairs, "--output-dir", pairs, *model],
        "holds files mmscore did not write": ["score", pairs, "--output-dir", str(tmp_path / "mine"), *model],
        "is a folder; -o needs a .parquet file name": ["score", pairs, "-o", str(tmp_path / "x.parquet"), *model],
    }
    (tmp_path / "x.parquet").mkdir()
    earlier = tmp_path / "earlier"  # an earlier run's folder, scored again into itself
    earlier.mkdir()
    (earlier / "_mmscore_run.json").write_text("{}")
    pq.write_table(pa.table({"text_1": ["a"], "text_2": ["b"]}), earlier / "part-000000.parquet")
    cases["the input is inside --output-dir"] = ["score", str(earlier), "--output-dir", str(earlier), *model]
    for expected, args in cases.items():
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 2 and expected.strip() in result.output, (args, result.output)
        assert "Traceback" not in result.output
    assert (tmp_path / "mine" / "notes.txt").exists() and (earlier / "part-000000.parquet").exists()


def test_cli_writes_a_folder_and_reports_on_it(scored, model_dir, tmp_path):
    _scorer, file, _folder = scored
    out = tmp_path / "cli-out"
    args = ["score", str(TWENTY), "--output-dir", str(out), "--model", str(model_dir), "--image-root", str(SAMPLE)]
    run = CliRunner().invoke(app, [*args, "--precision", "float32", "--batch-size", "1"])
    assert run.exit_code == 0, run.output
    assert f"scored 20 rows -> {out}" in run.output
    pd.testing.assert_frame_equal(pd.read_parquet(out), pd.read_parquet(file), check_exact=True)
    report = CliRunner().invoke(app, ["report", str(out), "--json"])
    assert report.exit_code == 0, report.output
    assert '"rows": 20' in report.output
