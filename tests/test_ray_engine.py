"""`--engine ray` writes exactly what the local engine writes — through a crashed actor, a killed driver and a
lost node — and folder inputs read as one table. Ray runs on loopback only, its files in the test's folder."""

import json
import os
import signal
import subprocess
import threading
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from conftest import mmscore_cli, s3_filesystem

# Read by Ray at import: every address Ray derives (a node's, a cluster's "127.0.0.1:port" as translated by
# ray.init) stays loopback, instead of the interface address Ray otherwise learns by a UDP "connect".
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
ray = pytest.importorskip("ray", reason="Ray is an optional extra (pip install 'mmscore[ray]')")

from mmscore.scoring import ray_engine  # noqa: E402
from mmscore.scoring.ray_engine import plan_shards  # noqa: E402
from mmscore.scoring.run import EngineJob  # noqa: E402

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"
FILE_SIZES = (37, 300, 5, 1, 257)  # uneven files, boundaries inside chunks and shards


@pytest.fixture(scope="module")
def ray_home(tmp_path_factory):
    """HOME, RAY_TMPDIR and usage stats pointed into this module's temp folder (short: socket paths are)."""
    root = Path(f"/tmp/mmray-{os.getpid()}")
    root.mkdir(exist_ok=True)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RAY_TMPDIR", str(root))
        patch.setenv("HOME", str(tmp_path_factory.mktemp("home")))
        patch.setenv("RAY_USAGE_STATS_ENABLED", "0")
        yield root


@pytest.fixture(scope="module")
def pairs_folder(tmp_path_factory, shared_data_or_none):
    """Several Parquet files of real tweet texts (sample texts without ../shared), some with drawn photos."""
    folder = tmp_path_factory.mktemp("pairs")
    sample = pd.read_csv(SAMPLE / "pairs.csv", dtype=str)
    total = sum(FILE_SIZES)
    if shared_data_or_none is not None:
        tweets = pd.read_csv(shared_data_or_none / "tweets" / "tweets_trainval.csv", dtype=str).head(total)
        texts = tweets[["text_1", "text_2"]].fillna("")
    else:
        texts = pd.concat([sample[["text_1", "text_2"]]] * (total // len(sample) + 1)).head(total)
    rows = texts.reset_index(drop=True)
    rows.insert(0, "row", [f"r{i:05d}" for i in range(total)])
    images = [str(SAMPLE / p) if isinstance(p, str) else None for p in sample["image_1"]]
    rows["image_1"] = [images[i % len(images)] if i % 3 == 0 else None for i in range(total)]
    start = 0
    for i, size in enumerate(FILE_SIZES):
        rows.iloc[start : start + size].to_parquet(folder / f"part-{i:02d}.parquet", row_group_size=50)
        start += size
    return folder


@pytest.fixture(scope="module")
def shared_data_or_none():
    from conftest import SHARED_DATA

    return SHARED_DATA if SHARED_DATA.is_dir() else None


@pytest.fixture(scope="module")
def scorer(model_dir):
    import mmscore

    return mmscore.Scorer(model_dir, image_root=SAMPLE, precision="float32", batch_size=8, fetch_workers=4)


@pytest.fixture(scope="module")
def local_output(scorer, pairs_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("local") / "local.parquet"
    scorer.score_file(pairs_folder, out)
    return out


@pytest.fixture
def local_ray(ray_home):
    ray.init(num_cpus=2, _node_ip_address="127.0.0.1", include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def assert_same_output(got: Path, expected: Path):
    pd.testing.assert_frame_equal(pd.read_parquet(got), pd.read_parquet(expected), check_exact=True)
    assert pq.read_schema(got).remove_metadata().equals(pq.read_schema(expected).remove_metadata())


def _score_on_ray(scorer, folder, out, actors=None, part_chunks=None):
    """The Ray engine's entry point with the job the Scorer would hand it (images under the sample folder)."""
    from mmscore.io.pairs_reader import open_pairs

    images = replace(scorer.images, image_root=SAMPLE)
    options = replace(scorer.options, part_chunks=part_chunks)
    job = EngineJob(open_pairs(folder), out, scorer.predictor, options, scorer.model, images, None, actors)
    return ray_engine.score(job)


def test_shards_cover_every_row_once():
    shards = plan_shards(1001, 256)
    assert [(s.start, s.rows) for s in shards] == [(0, 256), (256, 256), (512, 256), (768, 233)]
    assert plan_shards(0, 256) == []


def test_folder_input_is_one_table_in_sorted_order(scorer, pairs_folder, local_output):
    """The local engine reads the folder's files in name order as one table: every row once, in order."""
    rows = pd.read_parquet(local_output)["row"]
    assert list(rows) == [f"r{i:05d}" for i in range(sum(FILE_SIZES))]


def test_ray_equals_local_bit_for_bit_on_many_uneven_files(scorer, pairs_folder, local_output, local_ray, tmp_path):
    out = tmp_path / "ray.parquet"
    summary = _score_on_ray(scorer, pairs_folder, out, actors=2, part_chunks=1)
    assert_same_output(out, local_output)
    facts = json.loads(pq.read_schema(out).metadata[b"mmscore"])
    assert facts["engine"] == "ray" and facts["shards"] == 10 and summary.rows == sum(FILE_SIZES)
    assert not (tmp_path / "ray.parquet.parts").exists()


def test_ray_writes_a_folder_of_parts_to_s3_equal_to_local(s3_endpoint, scorer, pairs_folder, local_output, local_ray):
    """--output-dir as an s3:// URI: actors write their shards' parts straight to the bucket (AWS_* from the
    nodes' environment); the folder reads back as the local output, bit for bit."""
    import pyarrow.fs as pafs

    from mmscore.io.scored_writer import ScoredOutput, read_run_facts

    bucket = s3_filesystem(s3_endpoint)
    bucket.create_dir("ray-out")
    _score_on_ray(scorer, pairs_folder, ScoredOutput("s3://ray-out/scored", folder=True), actors=2, part_chunks=2)
    listed = bucket.get_file_info(pafs.FileSelector("ray-out/scored"))
    assert sorted(i.base_name for i in listed if i.base_name.startswith("part-")) == [
        f"part-{i:06d}.parquet" for i in range(5)
    ]  # 600 rows in shards of 128
    got = pq.read_table("ray-out/scored", filesystem=bucket)
    pd.testing.assert_frame_equal(got.to_pandas(), pd.read_parquet(local_output), check_exact=True)
    assert got.schema.remove_metadata().equals(pq.read_schema(local_output).remove_metadata())
    assert read_run_facts("s3://ray-out/scored")["shards"] == 5


class _in_thread(threading.Thread):
    """Run ``work`` in the background; :meth:`finish` waits for it and re-raises what it raised."""

    def __init__(self, work):
        super().__init__(daemon=True)
        self.work, self.error = work, None
        self.start()

    def run(self):
        try:
            self.work()
        except BaseException as exc:  # handed to the test thread
            self.error = exc

    def finish(self, timeout: float = 400):
        self.join(timeout)
        assert not self.is_alive(), f"still running after {timeout} s"
        if self.error:
            raise self.error


def _actor_pids() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if b"MapWorker" in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def _wait_for_parts(parts: Path, at_least: int, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while len(list(parts.glob("part-*.parquet"))) < at_least:
        assert time.monotonic() < deadline, f"no {at_least} parts in {parts} after {timeout} s"
        time.sleep(0.05)


def test_an_actor_killed_mid_run_is_replaced_and_the_output_is_exact(
    scorer, pairs_folder, local_output, local_ray, tmp_path
):
    out = tmp_path / "ray.parquet"
    run = _in_thread(lambda: _score_on_ray(scorer, pairs_folder, out, actors=1, part_chunks=1))
    _wait_for_parts(tmp_path / "ray.parquet.parts", 2)
    killed = _actor_pids()
    assert killed, "no actor process found to kill"
    for pid in killed:
        os.kill(pid, signal.SIGKILL)
    run.finish()
    assert_same_output(out, local_output)


def test_killed_driver_then_resume_is_exact(scorer, pairs_folder, local_output, model_dir, ray_home, tmp_path):
    """SIGKILL the whole `mmscore score --engine ray` process group mid-run, then `--resume`: same output, and
    the finished shards were not scored again."""
    out = tmp_path / "ray.parquet"
    args = ["score", pairs_folder, "-o", out, "--engine", "ray", "--model", model_dir, "--precision", "float32"]
    args += ["--batch-size", "8", "--fetch-workers", "4", "--image-root", SAMPLE, "--offline"]
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    driver = subprocess.Popen(mmscore_cli(*args), start_new_session=True, **quiet)
    try:
        _wait_for_parts(tmp_path / "ray.parquet.parts", 1)
    finally:
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
    assert not out.exists()
    resumed = subprocess.run(mmscore_cli(*args, "--resume"), capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert_same_output(out, local_output)
    assert json.loads(pq.read_schema(out).metadata[b"mmscore"])["resumed_rows"] >= 256


def test_losing_a_node_mid_run_loses_and_duplicates_no_row(scorer, pairs_folder, local_output, ray_home, tmp_path):
    """A two-node local cluster (one CPU each, loopback); the node running an actor is removed mid-run."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 1, "node_ip_address": "127.0.0.1", "include_dashboard": False}
    )
    worker = cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1")
    try:
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, _node_ip_address="127.0.0.1", log_to_driver=False)
        out = tmp_path / "ray.parquet"
        run = _in_thread(lambda: _score_on_ray(scorer, pairs_folder, out, actors=2, part_chunks=1))
        _wait_for_parts(tmp_path / "ray.parquet.parts", 2)
        cluster.remove_node(worker)
        run.finish()
        assert_same_output(out, local_output)
    finally:
        ray.shutdown()
        cluster.shutdown()


def test_csv_input_is_refused_by_the_ray_engine_with_one_line(scorer, tmp_path):
    from mmscore.errors import InputError

    with pytest.raises(InputError, match="--engine ray reads Parquet"):
        _score_on_ray(scorer, SAMPLE / "pairs.csv", tmp_path / "out.parquet")
