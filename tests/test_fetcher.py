import pytest
from conftest import png_bytes

from mmscore.images.fetcher import FetchSettings, ImageFetcher
from mmscore.images.image_cache import ImageCache
from mmscore.images.url_policy import UrlPolicy, UrlRefused
from mmscore.pipeline import load_image


def _fetcher(tmp_path, **settings):
    return ImageFetcher(
        ImageCache(tmp_path / "cache"),
        UrlPolicy(allow_private=True),
        FetchSettings(backoff=0.01, **settings),
        base_dir=tmp_path,
    )


def test_fetch_then_cache_hit_makes_no_request(tmp_path, image_server):
    url = image_server.image("/a.png", png_bytes())
    fetcher = _fetcher(tmp_path)
    first, second = fetcher.fetch(url), fetcher.fetch(url)
    assert (first.status, second.status) == ("ok", "cached")
    assert first.data == second.data == png_bytes()
    assert image_server.hits["/a.png"] == 1


def test_http_errors_become_statuses(tmp_path, image_server):
    fetcher = _fetcher(tmp_path)
    assert fetcher.fetch(image_server.url("/nothing-here.png")).status == "http_404"


def test_503_is_retried_then_succeeds(tmp_path, image_server):
    body = png_bytes()
    image_server.routes["/flaky.png"] = lambda n: (503, {"Retry-After": "0"}, b"busy") if n < 3 else (200, {}, body)
    result = _fetcher(tmp_path).fetch(image_server.url("/flaky.png"))
    assert result.status == "ok" and result.data == body
    assert image_server.hits["/flaky.png"] == 3


def test_oversized_body_is_refused(tmp_path, image_server):
    url = image_server.image("/big.png", b"x" * 5000)
    assert _fetcher(tmp_path, max_bytes=1000).fetch(url).status == "too_large"


def test_html_is_not_an_image_whatever_the_content_type(tmp_path, image_server):
    url = image_server.image("/fake.png", b"<html><body>gone</body></html>", content_type="image/png")
    pixels, status = load_image(_fetcher(tmp_path), url, 224)
    assert pixels is None and status == "not_an_image"


def test_redirect_to_image_is_followed(tmp_path, image_server):
    target = image_server.image("/real.png", png_bytes())
    image_server.routes["/moved"] = lambda _n: (302, {"Location": "/real.png"}, b"")
    result = _fetcher(tmp_path).fetch(image_server.url("/moved"))
    assert result.status == "ok" and result.data == png_bytes()
    assert target.endswith("/real.png")


def test_redirect_loop_stops(tmp_path, image_server):
    image_server.routes["/loop"] = lambda _n: (302, {"Location": "/loop"}, b"")
    assert _fetcher(tmp_path).fetch(image_server.url("/loop")).status == "too_many_redirects"


def test_local_paths_and_empty_cells(tmp_path):
    (tmp_path / "pic.png").write_bytes(png_bytes())
    fetcher = _fetcher(tmp_path)
    assert fetcher.fetch("pic.png").status == "ok"
    assert fetcher.fetch("nope.png").status == "not_found"
    assert fetcher.fetch("").status == fetcher.fetch(None).status == "missing"


def test_offline_uses_only_the_cache(tmp_path, image_server):
    url = image_server.image("/b.png", png_bytes())
    assert _fetcher(tmp_path, offline=True).fetch(url).status == "offline_miss"
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


def test_redirect_to_a_private_address_is_refused(tmp_path, image_server):
    # "localhost" resolves (for the policy only) to a public address, so the first hop is allowed;
    # the redirect target is a private literal, refused at the check, so no connection is attempted.
    image_server.routes["/hop"] = lambda _n: (302, {"Location": "http://10.9.8.7/secret.png"}, b"")
    policy = UrlPolicy(resolver=_resolver({"localhost": ["8.8.8.8"]}))
    fetcher = ImageFetcher(ImageCache(tmp_path / "cache"), policy, FetchSettings())
    url = image_server.url("/hop").replace("127.0.0.1", "localhost")
    assert fetcher.fetch(url).status == "blocked_private"
    assert image_server.hits["/hop"] == 1


def test_corrupt_cache_entry_is_detected_and_refetched(tmp_path, image_server):
    url = image_server.image("/d.png", png_bytes())
    fetcher = _fetcher(tmp_path)
    fetcher.fetch(url)
    blob = next((tmp_path / "cache" / "blobs").rglob("*"))
    while blob.is_dir():
        blob = next(blob.iterdir())
    blob.write_bytes(b"torn")
    again = fetcher.fetch(url)
    assert again.status == "ok" and again.data == png_bytes()
    assert image_server.hits["/d.png"] == 2
