import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import ImageServer, make_fetcher, png_bytes

from mmscore.images.fetcher import FetchSettings, ImageFetcher
from mmscore.images.image_cache import ImageCache
from mmscore.images.url_policy import UrlPolicy, UrlRefused


def test_fetch_then_cache_hit_makes_no_request(tmp_path, image_server):
    url = image_server.image("/a.png", png_bytes())
    fetcher = make_fetcher(tmp_path)
    first, second = fetcher.fetch(url), fetcher.fetch(url)
    assert (first.status, second.status) == ("ok", "cached")
    assert first.data == second.data == png_bytes()
    assert image_server.hits["/a.png"] == 1


def test_local_paths_and_empty_cells(tmp_path):
    (tmp_path / "pic.png").write_bytes(png_bytes())
    fetcher = make_fetcher(tmp_path)
    assert fetcher.fetch("pic.png").status == "ok"
    assert fetcher.fetch("nope.png").status == "not_found"
    assert fetcher.fetch("").status == fetcher.fetch(None).status == "missing"


def test_offline_uses_only_the_cache(tmp_path, image_server):
    url = image_server.image("/b.png", png_bytes())
    assert make_fetcher(tmp_path, offline=True).fetch(url).status == "offline_miss"
    assert image_server.hits["/b.png"] == 0


def _resolver(table):
    def resolve(host, _port):
        return table.get(host, [host])

    return resolve


@pytest.mark.parametrize("address", ["10.0.0.5", "192.168.1.1", "172.16.0.1", "127.0.0.1", "169.254.1.1", "::1"])
def test_private_addresses_are_refused_before_connecting(address):
    policy = UrlPolicy(resolver=_resolver({"images.example": [address]}))
    with pytest.raises(UrlRefused) as refused:
        policy.check("http://images.example/x.png")
    assert refused.value.status == "blocked_private"


def test_non_http_schemes_are_refused():
    with pytest.raises(UrlRefused) as refused:
        UrlPolicy().check("file:///etc/passwd")
    assert refused.value.status == "blocked_scheme"


def test_loopback_server_is_refused_by_default(tmp_path, image_server):
    url = image_server.image("/c.png", png_bytes())
    fetcher = ImageFetcher(ImageCache(tmp_path / "cache"), UrlPolicy(), FetchSettings())
    assert fetcher.fetch(url).status == "blocked_private"
    assert image_server.hits["/c.png"] == 0


def test_corrupt_cache_entry_is_detected_and_refetched(tmp_path, image_server):
    url = image_server.image("/d.png", png_bytes())
    fetcher = make_fetcher(tmp_path)
    fetcher.fetch(url)
    blob = next((tmp_path / "cache" / "blobs").rglob("*"))
    while blob.is_dir():
        blob = next(blob.iterdir())
    blob.write_bytes(b"torn")
    again = fetcher.fetch(url)
    assert again.status == "ok" and again.data == png_bytes()
    assert image_server.hits["/d.png"] == 2


def test_cache_paths_come_from_hashes_only(tmp_path, image_server):
    image_server.raw_routes["/x/..%2F..%2Fetc%2Fpasswd?name=../../evil.png"] = lambda handler, _n: (
        handler.send_response(200),
        handler.send_header("Content-Length", str(len(png_bytes()))),
        handler.end_headers(),
        handler.wfile.write(png_bytes()),
    )
    url = image_server.base + "/x/..%2F..%2Fetc%2Fpasswd?name=../../evil.png"
    assert make_fetcher(tmp_path).fetch(url).status == "ok"
    files = [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]
    assert len(files) == 2  # one blob, one URL entry
    for path in files:
        relative = path.relative_to(tmp_path / "cache").parts
        assert relative[0] in ("blobs", "urls") and len(relative[1]) == 2 and len(relative[2]) == 64
        int(relative[2], 16)


def test_truncated_url_entry_is_a_miss(tmp_path, image_server):
    url = image_server.image("/e.png", png_bytes())
    fetcher = make_fetcher(tmp_path)
    fetcher.fetch(url)
    entry = next(p for p in (tmp_path / "cache" / "urls").rglob("*") if p.is_file())
    entry.write_text(entry.read_text()[:10])
    assert fetcher.fetch(url).status == "ok"
    assert image_server.hits["/e.png"] == 2


def test_unwritable_cache_still_returns_the_image(tmp_path, image_server):
    url = image_server.image("/f.png", png_bytes())
    (tmp_path / "cache").write_text("a file where the cache directory should be")
    fetched = make_fetcher(tmp_path).fetch(url)
    assert fetched.status == "ok" and fetched.data == png_bytes()


def test_one_connection_serves_image_after_image_even_after_an_error_reply(tmp_path):
    """Connections go back to the pool for reuse, and one whose reply was an error with a body is closed rather
    than reused with that body still unread (the next reply would be read from the wrong bytes)."""
    server = ImageServer(keep_alive=True)
    try:
        server.routes["/gone.png"] = lambda _n: (410, {"Content-Type": "text/html"}, b"<html>gone</html>" * 50)
        urls = [server.image(f"/{i}.png", png_bytes(colour=(i, 0, 0))) for i in range(6)]
        fetcher = make_fetcher(tmp_path, retries=0)
        first = [fetcher.fetch(url) for url in urls[:3]]
        gone = fetcher.fetch(server.url("/gone.png"))
        after = [fetcher.fetch(url) for url in urls[3:]]
    finally:
        server.close()
    assert gone.status == "http_410"
    assert [f.status for f in first + after] == ["ok"] * 6
    assert [f.data for f in first + after] == [png_bytes(colour=(i, 0, 0)) for i in range(6)]
    # one connection for the first three and the error reply; a fresh one after it, reused for the rest
    assert sorted(server.peers.values()) == [3, 4]


def test_fetching_goes_on_while_decoding_waits_and_stops_at_the_backlog(tmp_path, image_server, monkeypatch):
    """Fetch workers hand bytes to the decoders and fetch the next image: with every decode held up, 4 workers
    still fetch 2 x 4 images (decoding in the workers would stop at 4), and no more (bounded memory)."""
    from mmscore.images import loading

    release, decode = threading.Event(), loading.decode_image
    monkeypatch.setattr(loading, "decode_image", lambda data, size: release.wait(30) and decode(data, size))
    urls = [image_server.image(f"/{i}.png", png_bytes()) for i in range(30)]
    fetcher = make_fetcher(tmp_path)
    fetcher.pool_size = 4
    with ThreadPoolExecutor(4) as pool, ThreadPoolExecutor(1) as caller:
        results = caller.submit(loading.load_images, urls, fetcher, pool, 16)
        deadline, seen = time.monotonic() + 10, -1
        while seen != image_server.hits.total() and time.monotonic() < deadline:
            seen = image_server.hits.total()
            time.sleep(0.5)  # until no new request arrives for half a second
        held = image_server.hits.total()
        release.set()
        loaded = results.result(timeout=60)
    assert held == 8
    assert len(loaded) == 30 and {status for _pixels, status in loaded.values()} == {"ok"}
