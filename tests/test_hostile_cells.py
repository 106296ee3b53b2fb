"""Any value in an image column ends as that row's status: no crash, no hang, no read outside the image root,
and a dead host is learned once per run."""

import os
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pandas as pd
import pyarrow.parquet as pq
import pytest
from conftest import png_bytes
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mmscore.images.fetcher import FetchSettings, ImageFetcher
from mmscore.images.image_cache import ImageCache
from mmscore.images.url_policy import UrlPolicy

STATUS_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789_")


def _loopback_resolver(_host, _port):
    return ["127.0.0.1"]


def _fetcher(root, allow_private=False, **settings):
    policy = UrlPolicy(allow_private=allow_private, resolver=_loopback_resolver, resolve_timeout=0.5)
    quick = {"connect_timeout": 0.3, "read_timeout": 0.3, "total_timeout": 0.6, "retries": 0, **settings}
    return ImageFetcher(ImageCache(root / "cache"), policy, FetchSettings(**quick), image_root=root)


HOSTILE_PARTS = st.sampled_from(
    [
        "http://", "https://", "ftp://", "file://", "//", "[", "]", "[::1", "::1]", "[fe80::1%eth0]", ":", ":-1",
        ":99999", ":0", ":65536", ":http", "@", "user:pass@", "..", ".", "..a", "a..b", "%", "%zz", "%00", "\x00",
        "\n", "\r\n", "\t", " ", "#", "?", "\\", "é", "\u202e", "\ud7ff", "xn--", "-", "a" * 64, "a." * 130,
        "127.0.0.1", "0x7f.1", "10.0.0.1", "169.254.169.254", "localhost", "/etc/passwd", "../" * 5, "~", "😀",
    ]
)  # fmt: skip
URL_SHAPED = st.lists(HOSTILE_PARTS | st.text(max_size=8), min_size=1, max_size=8).map("".join)
NON_STRINGS = st.one_of(
    st.none(), st.integers(), st.floats(allow_nan=True), st.booleans(), st.binary(max_size=64),
    st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)  # fmt: skip
ANY_CELL = st.one_of(st.text(max_size=300), URL_SHAPED, NON_STRINGS)


@pytest.mark.parametrize("allow_private", [False, True], ids=["default-policy", "allow-private-urls"])
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cell=ANY_CELL)
def test_fetch_never_raises_for_any_cell(tmp_path, allow_private, cell):
    fetched = _fetcher(tmp_path, allow_private).fetch(cell)
    assert isinstance(fetched.status, str) and set(fetched.status) <= STATUS_CHARS
    assert (fetched.data is None) == (fetched.status not in ("ok", "cached"))


@pytest.mark.parametrize(
    "cell,status",
    [
        ("http://[::1/x.png", "bad_url"),
        ("http://example.org:99999/x.png", "bad_url"),
        ("http://exa..mple.org/x.png", "bad_url"),
        ("http://" + "a" * 300 + ".org/x.png", "bad_url"),
        ("http://example.org/\x00.png", "bad_url"),
        ("gopher://example.org/x", "blocked_scheme"),
        ("pic\x00.png", "bad_path"),
    ],
)
def test_malformed_references_get_a_clear_status(tmp_path, cell, status):
    for allow_private in (False, True):
        assert _fetcher(tmp_path, allow_private).fetch(cell).status == status


def _hostile_root(tmp_path):
    """An image root with good images, and the hostile things a scraped file can point at."""
    root = tmp_path / "data"
    (root / "sub").mkdir(parents=True)
    (root / "good.png").write_bytes(png_bytes((10, 200, 10)))
    (root / "sub" / "inner.png").write_bytes(png_bytes((10, 10, 200)))
    os.mkfifo(root / "fifo.png")
    (root / "folder.png").mkdir()
    (root / "zero.png").symlink_to("/dev/zero")
    (root / "escape.png").symlink_to(tmp_path / "outside.png")
    (tmp_path / "outside.png").write_bytes(png_bytes((200, 10, 10)))
    (root / "inside_link.png").symlink_to(root / "sub" / "inner.png")
    return root


HOSTILE_LOCAL = {
    "good.png": "ok",
    "sub/inner.png": "ok",
    "inside_link.png": "ok",
    "fifo.png": "not_a_file",
    "folder.png": "not_a_file",
    "zero.png": "blocked_path",
    "escape.png": "blocked_path",
    "../outside.png": "blocked_path",
    "sub/../../outside.png": "blocked_path",
    "/etc/hostname": "blocked_path",
    "/proc/self/environ": "blocked_path",
    "missing.png": "not_found",
}


def test_local_references_stay_inside_the_image_root(tmp_path):
    root = _hostile_root(tmp_path)
    fetcher = _fetcher(root)
    got = {ref: fetcher.fetch(ref).status for ref in HOSTILE_LOCAL}
    assert got == HOSTILE_LOCAL
    assert fetcher.fetch(str(root / "good.png")).status == "ok"  # absolute, but inside the root


def test_devices_inside_the_root_are_not_files_and_big_files_stop_at_the_cap(tmp_path):
    dev = ImageFetcher(ImageCache(tmp_path / "c"), settings=FetchSettings(max_bytes=1000), image_root="/dev")
    started = time.monotonic()
    assert dev.fetch("zero").status == "not_a_file" and dev.fetch("null").status == "not_a_file"
    (tmp_path / "big.png").write_bytes(b"\x89PNG" + b"\0" * 5000)
    capped = ImageFetcher(ImageCache(tmp_path / "c"), settings=FetchSettings(max_bytes=1000), image_root=tmp_path)
    assert capped.fetch("big.png").status == "too_large"
    assert time.monotonic() - started < 2


# Runs the CLI and reports its own peak resident memory (VmHWM) at exit. getrusage cannot be used here: a child
# inherits the peak of the process it was forked from, and a pytest process holding many models is larger than
# any bound worth testing.
_MEASURED_CLI = (
    "import atexit, runpy, sys\n"
    "def peak():\n"
    "    line = next(l for l in open('/proc/self/status') if l.startswith('VmHWM:'))\n"
    "    sys.stderr.write('mmscore-peak-kB ' + line.split()[1] + '\\n')\n"
    "atexit.register(peak)\n"
    "sys.argv = ['mmscore', *sys.argv[1:]]\n"
    "runpy.run_module('mmscore.cli', run_name='__main__')\n"
)


def _peak_rss_mb(stderr: str) -> float:
    return int(stderr.rsplit("mmscore-peak-kB ", 1)[1].split()[0]) / 1024


@pytest.mark.slow
def test_a_hostile_file_is_scored_to_the_end_through_the_cli(tmp_path, model_dir):
    root = _hostile_root(tmp_path)
    hostile = [*HOSTILE_LOCAL, "http://[::1/x.png", "file:///etc/passwd", "http://exa..mple/x.png", "\x00", "  "]
    cells = ["good.png", *hostile, "good.png"]
    pd.DataFrame(
        {
            "id": [f"{i:019d}" for i in range(len(cells))],
            "text_1": ["a claim"] * len(cells),
            "text_2": ["a reply"] * len(cells),
            "image_1": cells,
            "image_2": ["sub/inner.png"] * len(cells),
        }
    ).to_parquet(root / "pairs.parquet")
    started = time.monotonic()
    run = subprocess.run(
        [sys.executable, "-c", _MEASURED_CLI, "score", root / "pairs.parquet", "-o", tmp_path / "out.parquet",
         "--model", model_dir, "--image-cache", tmp_path / "cache"],
        capture_output=True, text=True, timeout=240,  # a hang fails the test instead of stalling the suite
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    peak_mb = _peak_rss_mb(run.stderr)
    assert time.monotonic() - started < 240
    assert peak_mb < 4000, f"peak RSS {peak_mb:.0f} MB"  # a normal run is ~1.6 GB; /dev/zero read fully would not stop
    out = pq.read_table(tmp_path / "out.parquet").to_pandas()
    assert out["id"].tolist() == [f"{i:019d}" for i in range(len(cells))]
    expected = ["ok", *[HOSTILE_LOCAL.get(c) for c in hostile], "ok"]
    got = out["image_1_status"].tolist()
    for cell, want, status in zip(cells, expected, got, strict=True):
        if want is not None:
            assert status == want, cell
        else:
            assert status not in ("ok", "cached"), cell
    assert set(out["image_2_status"]) <= {"ok", "cached"}


def test_a_name_that_never_resolves_is_paid_once_for_many_references(tmp_path):
    calls = []

    def hung(host, _port):
        calls.append(host)
        time.sleep(2)
        return ["93.184.216.34"]

    policy = UrlPolicy(resolver=hung, resolve_timeout=0.3)
    fetcher = ImageFetcher(ImageCache(tmp_path / "c"), policy, FetchSettings(), image_root=tmp_path)
    urls = [f"http://dead.example/{i}.jpg" for i in range(2000)]
    started = time.monotonic()
    with ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(lambda u: fetcher.fetch(u).status, urls))
    assert statuses[0] == "dns_timeout" and set(statuses) == {"dns_timeout", "host_unreachable"}
    assert calls == ["dead.example"]  # one lookup for the run, its failure remembered
    assert time.monotonic() - started < 3


def test_a_host_that_refuses_connections_is_given_up_after_a_few_tries(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens here once closed
    fetcher = ImageFetcher(
        ImageCache(tmp_path / "c"),
        UrlPolicy(allow_private=True),
        FetchSettings(retries=3, backoff=0.05),
        image_root=tmp_path,
    )
    statuses = [fetcher.fetch(f"http://127.0.0.1:{port}/{i}.png").status for i in range(200)]
    assert statuses[0] == "connection_error"  # its own retries tripped the breaker
    assert set(statuses[1:]) == {"host_unreachable"}  # the rest never try
    assert fetcher.breaker.open_hosts() == [f"127.0.0.1:{port}"]


def test_a_live_host_answering_errors_is_never_given_up(tmp_path, image_server):
    image_server.routes["/gone"] = lambda _n: (404, {}, b"")
    good = image_server.image("/ok.png", png_bytes())
    fetcher = _fetcher(tmp_path, allow_private=True)
    assert [fetcher.fetch(image_server.url("/gone")).status for _ in range(10)] == ["http_404"] * 10
    assert fetcher.fetch(good).status == "ok"


def test_dead_hosts_do_not_hold_the_workers_that_live_hosts_need(tmp_path, image_server):
    """8 dead names (lookups hang) ahead of 40 live images, 4 workers: the dead lookups run side by side in
    the lookup pool while the workers fetch live images, so the chunk takes about one lookup timeout.
    Workers that waited on each dead lookup in turn would need 2 × the timeout and more."""
    import pyarrow as pa

    from mmscore.scoring.chunks import prepare_chunk

    def resolver(host, _port):
        if host.startswith("dead"):
            time.sleep(5)
        return ["127.0.0.1"]

    live = [image_server.image(f"/{i}.png", png_bytes((i, 0, 0))) for i in range(40)]
    dead = [f"http://dead{i}.example/x.png" for i in range(8)]
    policy = UrlPolicy(allowed_networks=["127.0.0.1/32"], resolver=resolver, resolve_timeout=1.0)
    fetcher = ImageFetcher(ImageCache(tmp_path / "c"), policy, FetchSettings(), image_root=tmp_path, pool_size=4)
    refs = dead + live
    table = pa.table({"text_1": ["a"] * len(refs), "text_2": ["b"] * len(refs), "image_1": refs})
    started = time.monotonic()
    with ThreadPoolExecutor(4) as pool:
        chunk = prepare_chunk(table, fetcher, pool, 32)
    elapsed = time.monotonic() - started
    statuses = chunk.statuses["image_1_status"]
    assert statuses == ["dns_timeout"] * 8 + ["ok"] * 40
    assert elapsed < 1.9, f"{elapsed:.1f} s"


def _slow_route(active: list, log: list, lock, seconds: float = 0.2):
    """A route that counts requests in flight, logging ``(arrival time, in flight)`` at each arrival."""

    def slow(_n):
        with lock:
            active[0] += 1
            log.append((time.monotonic(), active[0]))
        time.sleep(seconds)
        with lock:
            active[0] -= 1
        return 200, {"Content-Type": "image/png"}, png_bytes()

    return slow


def test_a_host_alone_uses_every_worker_and_shares_them_under_contention(tmp_path, image_server):
    """The per-host cap (3/4 of the workers) holds only while another host's references wait: a file of one
    host uses all 8 workers; with a second host's references waiting, the slow one gets at most 6."""
    from conftest import ImageServer

    from mmscore.images.loading import load_images

    active, log, lock = [0], [], threading.Lock()
    for i in range(40):
        image_server.routes[f"/slow/{i}.png"] = _slow_route(active, log, lock)
    slow_urls = [image_server.url(f"/slow/{i}.png") for i in range(40)]
    fetcher = _fetcher(tmp_path, allow_private=True, total_timeout=5, read_timeout=5)
    fetcher.pool_size, fetcher.per_host = 8, 6
    with ThreadPoolExecutor(8) as pool:
        results = load_images(slow_urls[:24], fetcher, pool, 32)
    assert {status for _pixels, status in results.values()} == {"ok"}
    assert max(n for _at, n in log) == 8  # alone: every worker

    log.clear()
    other, served = ImageServer(), []
    try:
        for i in range(12):
            other.routes[f"/fast/{i}.png"] = lambda _n: (served.append(time.monotonic()) or 200, {}, png_bytes())
        fast_urls = [other.url(f"/fast/{i}.png") for i in range(12)]
        with ThreadPoolExecutor(8) as pool:
            results = load_images(slow_urls[24:] + fast_urls, fetcher, pool, 32)
    finally:
        other.close()
    assert {status for _pixels, status in results.values()} == {"ok"} and len(served) == 12
    # The slow host's references come first: until the other host's first image is served, its references are
    # all still waiting or just taken, so the slow host stays at the cap. (Later, once the last of them has left
    # the line, the slow host may take the freed workers; when exactly depends on thread timing.)
    while_contended = [n for at, n in log if at < min(served)]
    assert while_contended and max(while_contended) <= 6, while_contended


@pytest.mark.parametrize("first", ["a", "b"])
def test_while_both_hosts_have_references_waiting_neither_exceeds_the_cap(tmp_path, first):
    """Two slow hosts, one's references first in the line, then the other's (both orders). A reference deferred
    because its host was at the cap waits again *as that host's*: while a host still has requests to come, the
    other host never holds more than the cap (6 of 8 workers), and every worker is used. (Counted otherwise, the
    second host looks alone once its own line empties and takes every worker while the first host's deferred
    references wait: a stall against a hanging host.)"""
    from conftest import ImageServer

    from mmscore.images.loading import load_images

    lock = threading.Lock()
    servers = {"a": ImageServer(), "b": ImageServer()}
    active = {"a": [0], "b": [0]}
    logs = {"a": [], "b": []}
    try:
        urls = {}
        for name, server in servers.items():
            for i in range(24):
                server.routes[f"/{i}.png"] = _slow_route(active[name], logs[name], lock)
            urls[name] = [server.url(f"/{i}.png") for i in range(24)]
        second = "b" if first == "a" else "a"
        fetcher = _fetcher(tmp_path, allow_private=True, total_timeout=5, read_timeout=5)
        fetcher.pool_size, fetcher.per_host = 8, 6
        with ThreadPoolExecutor(8) as pool:
            results = load_images(urls[first] + urls[second], fetcher, pool, 32)
    finally:
        for server in servers.values():
            server.close()
    assert {status for _pixels, status in results.values()} == {"ok"} and len(results) == 48
    for host, other in (("a", "b"), ("b", "a")):
        last_of_other = max(at for at, _n in logs[other])
        # 50 ms of slack: the other host's last request is submitted a moment before it reaches its server
        contended = [n for at, n in logs[host] if at < last_of_other - 0.05]
        assert contended and max(contended) <= 6, (host, contended)
    assert max(n for _at, n in logs["a"]) + max(n for _at, n in logs["b"]) >= 8  # the workers are all used


def test_a_given_up_host_gets_one_trial_after_the_cooldown():
    from mmscore.images.host_health import HostBreaker

    breaker = HostBreaker(threshold=2, cooldown=0.2)
    breaker.record("h:80", unreachable=True)
    assert not breaker.is_open("h:80")
    breaker.record("h:80", unreachable=True)
    assert breaker.is_open("h:80") and breaker.is_open("h:80")
    time.sleep(0.25)
    assert not breaker.is_open("h:80")  # the trial
    assert breaker.is_open("h:80")  # everyone else still waits
    breaker.record("h:80", unreachable=False)  # the trial connected: the host is back
    assert not breaker.is_open("h:80") and breaker.open_hosts() == []


def test_a_failed_lookup_is_remembered_for_a_while_then_tried_again(monkeypatch):
    import mmscore.images.url_policy as url_policy

    calls = []

    def failing(host, _port):
        calls.append(host)
        raise OSError("no such host")

    policy = UrlPolicy(resolver=failing)
    for _ in range(50):
        assert _status(policy, "http://gone.example/x.png") == "dns_error"
    assert calls == ["gone.example"]
    monkeypatch.setattr(url_policy, "FAILURE_TTL", -10.0)  # as if the minute had passed
    assert _status(policy, "http://gone.example/x.png") == "dns_error"
    assert calls == ["gone.example", "gone.example"]


def _status(policy, url):
    from mmscore.images.url_policy import UrlRefused

    try:
        policy.check(url)
    except UrlRefused as refused:
        return refused.status
    return "ok"


def test_an_unexpected_error_inside_fetch_becomes_that_rows_status(tmp_path):
    """The last line of defence: whatever raises while handling one cell ends as ``fetch_error``/``bad_url``."""

    class Unprintable:
        def __str__(self):
            raise RuntimeError("no text for this cell")

    class BrokenCache(ImageCache):
        def get(self, url):
            raise KeyError(url)

    fetcher = _fetcher(tmp_path)
    assert fetcher.fetch(Unprintable()).status == "fetch_error"
    broken = ImageFetcher(BrokenCache(tmp_path / "c"), fetcher.policy, fetcher.settings, image_root=tmp_path)
    assert broken.fetch("http://example.org/x.png").status == "fetch_error"
    assert broken.fetch("good.png").status == "not_found"  # local paths never touch the cache
