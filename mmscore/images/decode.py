"""Decode image bytes with Pillow into the encoder's input: RGB uint8, square, resized.

Sniffs the real format from the bytes (never the extension or Content-Type). Handles palette,
alpha, greyscale, CMYK and 16-bit images, EXIF orientation, and animations (first frame).
A bad image becomes a status, never an exception.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from mmscore import statuses

MAX_PIXELS = 40_000_000  # ~6300x6300; larger is refused before decoding (decompression bombs)


@dataclass(frozen=True)
class Decoded:
    pixels: np.ndarray | None  # (size, size, 3) uint8
    status: str  # ok, not_an_image, too_many_pixels, corrupt_image


def _to_rgb(im: Image.Image) -> Image.Image:
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16/32-bit greyscale: scale the real range to 8 bits instead of clipping to white.
        arr = np.asarray(im, dtype=np.float64)
        top = arr.max() or 1.0
        im = Image.fromarray((arr * (255.0 / top)).astype(np.uint8), "L")
    if im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    if im.mode in ("RGBA", "LA", "PA"):
        im = im.convert("RGBA")
        background = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(background, im)  # transparent -> white, not black
    return im if im.mode == "RGB" else im.convert("RGB")  # convert() to the same mode would copy the image


def decode_image(data: bytes, size: int = 224, max_pixels: int = MAX_PIXELS) -> Decoded:
    """Bytes -> ``(size, size, 3)`` uint8 RGB, or a status saying why not."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
            if im.width * im.height > max_pixels:
                return Decoded(None, statuses.TOO_MANY_PIXELS)
            im.seek(0)
            if im.format == "JPEG":
                im.draft("RGB", (size, size))  # decode at reduced scale: much faster for big photos
            ImageOps.exif_transpose(im, in_place=True)  # in place: with no orientation to undo, no copy either
            im = _to_rgb(im)
            im = im.resize((size, size), Image.BILINEAR)
            return Decoded(np.asarray(im, dtype=np.uint8), statuses.OK)
    except UnidentifiedImageError:
        return Decoded(None, statuses.NOT_AN_IMAGE)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        return Decoded(None, statuses.TOO_MANY_PIXELS)
    except (OSError, ValueError, SyntaxError, EOFError):
        return Decoded(None, statuses.CORRUPT_IMAGE)


PIXEL_MAX = 255.0  # decoded images are uint8; every encoder takes float32 in [0, 1]


def unit_pixels(batch) -> np.ndarray:
    """Images as float32 in [0, 1] (uint8 input is divided by 255; float input is taken as already scaled)."""
    batch = np.asarray(batch)
    return batch.astype(np.float32) / PIXEL_MAX if batch.dtype == np.uint8 else batch


def unit_pixels_tensor(batch):
    """:func:`unit_pixels` inside a compiled TensorFlow step (uint8 tensor in, float32 tensor out)."""
    import tensorflow as tf

    return tf.cast(batch, tf.float32) / PIXEL_MAX
