"""Real photos unrelated to the labelled pairs: augmentation that teaches the head images are no shortcut,
and a held-out probe that measures how much attaching such photos changes the labels.

A folder of photos is split by content hash, so the split is the same on every machine: every fourth
photo (in hash order) is kept for the probe and never used for augmentation. Augmentation photos also
enter as crops and a mirror image, so the head sees more than a few dozen distinct vectors.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from mmscore.errors import InputError
from mmscore.images.decode import decode_image
from mmscore.images.fetcher import FetchSettings, ImageFetcher
from mmscore.images.image_cache import ImageCache
from mmscore.model.embedding_cache import EmbeddingCache, cached_encode, content_key
from mmscore.model.preprocessor import visible_image_mask

PHOTO_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp")
PROBE_EVERY = 4  # every 4th photo in hash order is held out for the robustness probe
ATTACH_SHARE = 0.7  # of the training rows without an image, this share gets unrelated photos
SAME_SHARE = 0.2  # of those, this share shows the same photo on both posts
ONE_SIDE_SHARE = 0.15  # and this share a photo on one post only


@dataclass(frozen=True)
class PhotoSets:
    augmentation: np.ndarray  # (views, dim) embeddings: each augmentation photo, its crops and mirror
    probe: np.ndarray  # (photos, dim) embeddings of the held-out photos
    augmentation_photos: int
    folder: str

    def card_facts(self) -> dict:
        return {
            "folder": Path(self.folder).name,
            "augmentation_photos": self.augmentation_photos,
            "augmentation_views": int(len(self.augmentation)),
            "probe_photos": int(len(self.probe)),
            "attach_share": ATTACH_SHARE,
            "same_photo_share": SAME_SHARE,
            "one_side_share": ONE_SIDE_SHARE,
        }


def _views(pixels: np.ndarray) -> list[np.ndarray]:
    """The photo, its mirror image, and three 70 % crops resized back to full size."""
    from PIL import Image

    size = pixels.shape[0]
    image = Image.fromarray(pixels)
    cut = int(size * 0.7)
    boxes = [(0, 0, cut, cut), (size - cut, size - cut, size, size), ((size - cut) // 2, 0, (size + cut) // 2, cut)]
    views = [pixels, np.asarray(image.transpose(Image.Transpose.FLIP_LEFT_RIGHT))]
    views += [np.asarray(image.crop(box).resize((size, size), Image.BILINEAR)) for box in boxes]
    return views


def _decoded_photos(folder: Path, size: int) -> list[tuple[str, np.ndarray]]:
    """(content hash, pixels) of every decodable photo file directly in ``folder``, in hash order.

    Files are read by the fetcher's local reader, rooted at ``folder``: the same guards as an image column
    (no escape through symlinks, regular files only, the size cap).
    """
    reader = ImageFetcher(ImageCache(), settings=FetchSettings(offline=True), image_root=folder)
    photos = {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in PHOTO_SUFFIXES:
            continue
        data = reader.fetch(path.name).data
        decoded = decode_image(data, size) if data is not None else None
        if decoded is not None and decoded.pixels is not None:
            photos[hashlib.sha256(data).hexdigest()] = decoded.pixels
    return sorted(photos.items())


def load_photo_sets(folder: Path, image_encoder, cache_root: Path | None = None) -> PhotoSets:
    """Embed the folder's photos (cached) and split them into augmentation views and probe photos."""
    folder = Path(folder)
    photos = _decoded_photos(folder, image_encoder.image_size)
    probe = [pixels for i, (_key, pixels) in enumerate(photos) if i % PROBE_EVERY == 0]
    augmentation = [view for i, (_k, pixels) in enumerate(photos) if i % PROBE_EVERY for view in _views(pixels)]
    if len(probe) < 2 or len(augmentation) < 2:
        raise InputError(f"{folder}: need at least 5 decodable photos (2 held out as the probe)")
    cache = EmbeddingCache(f"{image_encoder.name}-{image_encoder.version}", cache_root)

    def embed(images: list[np.ndarray]) -> np.ndarray:
        keys = [content_key(p.tobytes()) for p in images]
        return cached_encode(cache, keys, images, image_encoder.encode, image_encoder.dim)[0]

    return PhotoSets(embed(augmentation), embed(probe), len(photos) - len(probe), str(folder))


def attach_unrelated(emb, rows: np.ndarray, photos: np.ndarray, seed: int):
    """A copy of ``emb`` where a share of ``rows`` that have no image get unrelated photos; labels unchanged.

    Some get the same photo on both posts, some a photo on one post only, the rest two different photos.
    Rows that carry their own images keep them: those are evidence the head may learn from.
    """
    rng = np.random.default_rng(seed)
    rows = np.asarray(rows)
    bare = rows[emb.image_mask[rows].sum(1) == 0]
    chosen = bare[rng.random(len(bare)) < ATTACH_SHARE]
    kind = rng.random(len(chosen))
    first = rng.integers(0, len(photos), len(chosen))
    second = (first + rng.integers(1, len(photos), len(chosen))) % len(photos)  # never the same photo
    second = np.where(kind < SAME_SHARE, first, second)
    one_side = (kind >= SAME_SHARE) & (kind < SAME_SHARE + ONE_SIDE_SHARE)
    return _with_photos(emb, chosen, photos[first], photos[second], ~one_side)


def probe_photos(emb, rows: np.ndarray, photos: np.ndarray, seed: int, same: bool = False):
    """A copy of ``emb`` where every row in ``rows`` shows unrelated probe photos (two different ones, or
    ``same`` photo on both posts): a fixed, seeded assignment."""
    rng = np.random.default_rng(seed)
    rows = np.asarray(rows)
    first = rng.integers(0, len(photos), len(rows))
    second = first if same else (first + rng.integers(1, len(photos), len(rows))) % len(photos)
    return _with_photos(emb, rows, photos[first], photos[second], np.ones(len(rows), bool))


def _with_photos(emb, rows, image_1, image_2, second_present):
    images_1, images_2, mask = emb.image_1.copy(), emb.image_2.copy(), emb.image_mask.copy()
    images_1[rows] = image_1
    images_2[rows] = np.where(second_present[:, None], image_2, 0)
    mask[rows, 0] = 1.0
    mask[rows, 1] = second_present.astype(np.float32)
    return replace(emb, image_1=images_1, image_2=images_2, image_mask=mask)


def without_images(emb):
    """A copy of ``emb`` with every image hidden: the head trains and scores as a text model."""
    zeros = np.zeros_like(emb.image_1)
    return replace(emb, image_1=zeros, image_2=zeros, image_mask=visible_image_mask(emb.image_mask, False))
