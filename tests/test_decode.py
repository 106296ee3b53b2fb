import io

import numpy as np
import pytest
from PIL import Image

from mmscore.images.decode import decode_image


def _encode(im: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "LA", "L", "P", "CMYK", "I;16"])
def test_every_mode_becomes_rgb_uint8(mode):
    fmt = "JPEG" if mode == "CMYK" else ("TIFF" if mode == "I;16" else "PNG")
    decoded = decode_image(_encode(Image.new(mode, (40, 30)), fmt), 64)
    assert decoded.status == "ok"
    assert decoded.pixels.shape == (64, 64, 3) and decoded.pixels.dtype == np.uint8


def test_transparent_pixels_become_white_not_black():
    decoded = decode_image(_encode(Image.new("RGBA", (8, 8), (0, 0, 0, 0))), 16)
    assert decoded.pixels.min() == 255


def test_sixteen_bit_greyscale_keeps_its_range():
    arr = np.linspace(0, 4000, 64 * 64).reshape(64, 64).astype(np.uint16)
    decoded = decode_image(_encode(Image.fromarray(arr), "TIFF"), 64)
    assert decoded.pixels.max() > 200 and decoded.pixels.min() < 20


def test_exif_orientation_is_applied():
    im = Image.new("RGB", (80, 40), (255, 0, 0))
    im.paste((0, 0, 255), (0, 0, 40, 40))  # blue left half
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    decoded = decode_image(_encode(im, "JPEG", exif=exif.tobytes()), 32)
    top, bottom = decoded.pixels[2, 16], decoded.pixels[29, 16]
    assert top[2] > 200 and bottom[0] > 200  # blue moved to the top


def test_animation_uses_first_frame():
    frames = [Image.new("RGB", (20, 20), c) for c in ((255, 0, 0), (0, 255, 0))]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:])
    decoded = decode_image(buf.getvalue(), 16)
    assert decoded.pixels[8, 8, 0] > 200 and decoded.pixels[8, 8, 1] < 50


@pytest.mark.parametrize("data,status", [(b"not an image at all", "not_an_image"), (b"", "not_an_image")])
def test_garbage_is_a_status(data, status):
    assert decode_image(data).status == status


def test_truncated_image_is_a_status():
    data = _encode(Image.effect_noise((200, 200), 50).convert("RGB"), "JPEG")
    assert decode_image(data[: len(data) // 3]).status in ("corrupt_image", "ok")
    assert decode_image(data[:40]).status in ("corrupt_image", "not_an_image")


def test_decompression_bomb_is_refused():
    bomb = _encode(Image.new("1", (12000, 12000)))  # ~20 KB on disk, 144 M pixels decoded
    assert len(bomb) < 200_000
    assert decode_image(bomb).status == "too_many_pixels"


def test_real_tweet_images_decode(shared_data):
    paths = sorted((shared_data / "images" / "mediaeval2016").glob("*.*"))
    paths = [p for p in paths if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".gif")]
    assert paths
    statuses = {p.name: decode_image(p.read_bytes()).status for p in paths}
    assert set(statuses.values()) == {"ok"}, statuses
