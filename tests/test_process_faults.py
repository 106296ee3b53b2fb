"""Process faults: kills at random points, concurrent runs sharing a cache, and a disk that fills up."""

import hashlib
import os
import random
import resource
import signal
import subprocess
import time

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from conftest import mmscore_cli, png_bytes

from mmscore.errors import OutputError
from mmscore.io.scored_writer import ScoredWriter, read_run_facts


def _run(*args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(mmscore_cli(*args), capture_output=True, text=True, **kw)


def _parts(out) -> int:
    return len(list(out.with_name(out.name + ".parts").glob("part-*.parquet")))


def test_repeated_sigkill_then_resume_is_exact(tmp_path, model_dir):
    n = 400
    for i in range(4):
        (tmp_path / f"img{i}.png").write_bytes(png_bytes((60 * i, 100, 30)))
    pd.DataFrame(
        {
            "id": [str(10**18 + i) for i in range(n)],
            "text_1": [f"claim number {i} about the storm" for i in range(n)],
            "text_2": [f"reply {i % 9}" for i in range(n)],
            "image_1": [f"img{i % 4}.png" if i % 3 else "" for i in range(n)],
        }
    ).to_csv(tmp_path / "in.csv", index=False)
    common = ["--model", model_dir, "--batch-size", "8"]
    full = _run("score", tmp_path / "in.csv", "-o", tmp_path / "full.parquet", *common)
    assert full.returncode == 0, full.stderr
    assert "I0000" not in full.stderr and "absl" not in full.stderr  # TensorFlow's start-up chatter is kept quiet

    out, rng, kills = tmp_path / "resumed.parquet", random.Random(7), 0
    for attempt in range(3):
        args = ["score", tmp_path / "in.csv", "-o", out, *common] + (["--resume"] if attempt else [])
        proc = subprocess.Popen(mmscore_cli(*args), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        before, deadline = _parts(out), time.time() + 120
        while time.time() < deadline and _parts(out) <= before and proc.poll() is None:
            time.sleep(0.02)
        time.sleep(rng.uniform(0, 0.8))  # somewhere inside the next chunk, or while writing one
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
    assert kills >= 2 and not out.exists()
    resumed = _run("score", tmp_path / "in.csv", "-o", out, "--resume", *common)
    assert resumed.returncode == 0, resumed.stderr
    a, b = pd.read_parquet(tmp_path / "full.parquet"), pd.read_parquet(out)
    pd.testing.assert_frame_equal(a, b, check_exact=True)  # same rows, same order, bit-identical probabilities
    assert read_run_facts(out)["resumed_rows"] > 0
    assert not out.with_name(out.name + ".parts").exists()


def test_two_processes_share_one_image_cache(tmp_path, image_server, model_dir):
    def slow_image(i):
        body = png_bytes((7 * i % 255, 50, 150))
        return lambda _n: (time.sleep(0.05), (200, {"Content-Type": "image/png"}, body))[1]

    for i in range(30):
        image_server.routes[f"/s{i}.png"] = slow_image(i)
    pd.DataFrame(
        {
            "text_1": [f"post {i}" for i in range(60)],
            "text_2": ["reply"] * 60,
            "image_1": [image_server.url(f"/s{i % 30}.png") for i in range(60)],
            "image_2": [image_server.url(f"/s{(i * 7) % 30}.png") for i in range(60)],
        }
    ).to_csv(tmp_path / "in.csv", index=False)
    cache = tmp_path / "shared-cache"
    procs = [
        subprocess.Popen(
            mmscore_cli(
                "score",
                tmp_path / "in.csv",
                "-o",
                tmp_path / f"out{k}.parquet",
                "--model",
                model_dir,
                "--image-cache",
                cache,
                "--allow-private-urls",
                "--fetch-workers",
                "8",
            ),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for k in range(2)
    ]
    for proc in procs:
        _out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    a, b = pd.read_parquet(tmp_path / "out0.parquet"), pd.read_parquet(tmp_path / "out1.parquet")
    assert np.array_equal(a["prob_implies"], b["prob_implies"]) and (a["pred_label"] == b["pred_label"]).all()
    statuses = set(a["image_1_status"]) | set(a["image_2_status"]) | set(b["image_1_status"]) | set(b["image_2_status"])
    assert statuses <= {"ok", "cached"}
    assert max(image_server.hits.values()) <= 2  # each process fetches an image at most once
    blobs = [p for p in (cache / "blobs").rglob("*") if p.is_file()]
    assert len(blobs) == 30 and all(hashlib.sha256(p.read_bytes()).hexdigest() == p.name for p in blobs)
    assert not [p for p in cache.rglob("*.tmp")]


@pytest.fixture
def file_size_limit():
    """Makes writes past ``limit`` bytes fail with EFBIG, as a full disk fails them with ENOSPC."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)

    def apply(limit):
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))

    yield apply
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    signal.signal(signal.SIGXFSZ, previous)


def _table(rows: int) -> pa.Table:
    rng = np.random.default_rng(0)
    return pa.table({"text_1": [rng.bytes(2000).hex() for _ in range(rows)], "text_2": ["x"] * rows})


def test_full_disk_while_publishing_leaves_the_old_output_untouched(tmp_path, file_size_limit):
    out = tmp_path / "out.parquet"
    out.write_bytes(b"yesterday's results")
    writer = ScoredWriter(out, {"run": 1}, resume=False)
    for _ in range(4):
        writer.write(_table(50))  # each part ~200 KB
    file_size_limit(500_000)  # the merged file (~800 KB) does not fit
    with pytest.raises(OutputError, match="cannot write .*out.parquet: File too large"):
        writer.finish({}, _table(0).schema)
    assert out.read_bytes() == b"yesterday's results"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
    assert _parts(out) == 4  # the parts survive, so --resume can publish once there is room


def test_full_disk_while_writing_a_part_leaves_no_torn_part(tmp_path, file_size_limit):
    out = tmp_path / "out.parquet"
    writer = ScoredWriter(out, {"run": 1}, resume=False)
    writer.write(_table(10))
    file_size_limit(50_000)
    with pytest.raises(OutputError, match="File too large"):
        writer.write(_table(50))
    parts = out.with_name(out.name + ".parts")
    assert sorted(p.name for p in parts.iterdir()) == ["_mmscore_run.json", "part-000000.parquet"]


def test_full_disk_in_the_cli_is_one_line_and_no_output(tmp_path, model_dir):
    pd.DataFrame({"text_1": [os.urandom(3000).hex() for _ in range(64)], "text_2": ["b"] * 64}).to_csv(
        tmp_path / "in.csv", index=False
    )
    limit = 300_000  # parts of 8 rows fit, the ~400 KB result does not

    def small_disk():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)

    run = subprocess.run(
        mmscore_cli("score", tmp_path / "in.csv", "-o", tmp_path / "o.parquet", "--model", model_dir,
                    "--batch-size", "1"),
        capture_output=True, text=True, preexec_fn=small_disk,
    )  # fmt: skip
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert "cannot write" in run.stderr and "File too large" in run.stderr
    assert not (tmp_path / "o.parquet").exists()
