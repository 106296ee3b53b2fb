"""INPUT as an S3 URI, read through pyarrow.fs from a real S3-compatible server (moto) that the test starts on
127.0.0.1; credentials and endpoint come from the standard AWS_* variables, as a user's would."""

import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

pytest.importorskip("moto", reason="moto[server] is a dev dependency (pip install -e '.[dev]')")

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory):
    """A moto S3 server on loopback, and the environment that points pyarrow (and only it) there."""
    port = _free_port()
    log = (tmp_path_factory.mktemp("moto") / "server.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert server.poll() is None and time.monotonic() < deadline, "moto server did not start"
            time.sleep(0.2)
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",  # never ask a link-local metadata service for credentials
        }.items():
            patch.setenv(name, value)
        yield f"http://127.0.0.1:{port}"
    server.terminate()
    server.wait(timeout=30)
    log.close()


@pytest.fixture(scope="module")
def bucket_with_pairs(s3_endpoint):
    """``s3://pairs/in/`` holding the sample pairs split over three Parquet files (and one file to ignore)."""
    import pyarrow.fs as pafs

    fs = pafs.S3FileSystem(endpoint_override=s3_endpoint, allow_bucket_creation=True, region="us-east-1")
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
