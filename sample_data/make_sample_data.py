"""Make mmscore's demo data: ~20 invented pairs of posts and small images drawn with Pillow.

Run from anywhere: ``python sample_data/make_sample_data.py``. Writes, next to this script,
``images/*.png``/``*.jpg``, ``pairs.csv`` and ``pairs.parquet`` (same rows; ids are strings).
All texts and pictures are made up here; nothing is copied from any dataset.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parent

# (text_1, image_1 drawing, text_2, image_2 drawing, gold label)
PAIRS = [
    (
        "The river bridge is closed to traffic all weekend.",
        "bridge",
        "Bridge over the river shut until Monday.",
        "bridge",
        "Implies",
    ),
    ("Our team won the final 3-1 tonight!", "ball", "Final score tonight: we lost 1-3.", "ball", "Contradictory"),
    (
        "Sunny skies expected across the coast today.",
        "sun",
        "Heavy rain warning for the coast today.",
        "rain",
        "Contradictory",
    ),
    (
        "New bakery opens on Main Street this Friday.",
        "bread",
        "Friday: grand opening of the Main St bakery.",
        "bread",
        "Implies",
    ),
    (
        "The museum adds a dinosaur hall.",
        "bones",
        "Tickets for the spring concert are on sale.",
        "notes",
        "NoEntailment",
    ),
    (
        "City council approves the new bike lanes.",
        "bike",
        "Bike lanes are coming to the city after today's vote.",
        "bike",
        "Implies",
    ),
    ("The library will stay open until midnight.", "book", "The library now closes at 6 pm.", "book", "Contradictory"),
    ("Our cat turned ten today.", "cat", "Stock markets ended the week higher.", "chart", "NoEntailment"),
    (
        "Train service resumes after the storm.",
        "train",
        "Trains are running again now the storm has passed.",
        "train",
        "Implies",
    ),
    ("Marathon route changes this year.", "runner", "Recipe: lemon cake in 30 minutes.", "cake", "NoEntailment"),
    ("Power is back in all neighbourhoods.", "bulb", "Thousands still without power tonight.", "dark", "Contradictory"),
    ("The festival starts at noon on Saturday.", "tent", "Saturday festival kicks off at 12.", "tent", "Implies"),
    (
        "New phone released with a bigger screen.",
        "phone",
        "Farmers expect a good apple harvest.",
        "apple",
        "NoEntailment",
    ),
    ("The zoo welcomed a baby giraffe.", "giraffe", "A giraffe calf was born at the zoo.", "", "Implies"),
    ("Schools closed tomorrow due to snow.", "snow", "All schools open as usual tomorrow.", "school", "Contradictory"),
    (
        "Café owners in Zürich celebrate a record summer.",
        "cup",
        "Summer was a record season for cafés.",
        "cup",
        "Implies",
    ),
    ("The highway expansion is finished.", "road", "", "road", "NoEntailment"),
    (
        "A new exhibit on space travel opens today.",
        "rocket",
        "Local bakery wins a bread award.",
        "missing-file",
        "NoEntailment",
    ),
    ("Ferry tickets are half price in June.", "boat", "June ferry fares cut by 50%.", "boat", "Implies"),
    ("The mayor resigned this morning.", "", "The mayor says she will not resign.", "", "Contradictory"),
]

COLOURS = {
    "bridge": (120, 120, 140),
    "ball": (30, 160, 60),
    "sun": (250, 210, 40),
    "rain": (60, 90, 160),
    "bread": (200, 150, 80),
    "bones": (230, 230, 210),
    "notes": (40, 40, 40),
    "bike": (200, 40, 40),
    "book": (120, 60, 30),
    "cat": (160, 160, 160),
    "chart": (20, 120, 200),
    "train": (90, 20, 20),
    "runner": (240, 120, 20),
    "cake": (250, 230, 150),
    "bulb": (255, 240, 120),
    "dark": (15, 15, 30),
    "tent": (60, 140, 100),
    "phone": (30, 30, 30),
    "apple": (200, 20, 30),
    "giraffe": (220, 170, 60),
    "snow": (245, 245, 255),
    "school": (180, 80, 60),
    "cup": (110, 70, 40),
    "road": (80, 80, 80),
    "rocket": (200, 200, 220),
    "boat": (30, 100, 180),
}


def draw(subject: str, variant: int) -> Image.Image:
    """A small picture: a sky/ground background and a coloured shape standing for ``subject``."""
    im = Image.new("RGB", (160, 120), (135 + 20 * variant, 190, 235))
    d = ImageDraw.Draw(im)
    d.rectangle([0, 80, 160, 120], fill=(90, 150, 70))
    colour = COLOURS[subject]
    if subject in ("sun", "ball", "apple", "bulb"):
        d.ellipse([50 + 5 * variant, 20, 110 + 5 * variant, 80], fill=colour)
    elif subject in ("rain", "snow"):
        for x in range(5, 160, 12):
            d.line([x, 10, x - 6, 70], fill=colour, width=2)
    else:
        d.rectangle([30 + 8 * variant, 30, 130, 90], fill=colour)
        d.polygon([(30, 30), (80, 5), (130, 30)], fill=tuple(c // 2 for c in colour))
    d.text((6, 100), subject, fill=(255, 255, 255))
    return im


def main() -> None:
    images = HERE / "images"
    images.mkdir(exist_ok=True)
    rows = []
    for i, (t1, s1, t2, s2, label) in enumerate(PAIRS):
        row = {
            "id_1": str(1_700_000_000_000_000_000 + 2 * i),
            "text_1": t1,
            "id_2": str(1_700_000_000_000_000_001 + 2 * i),
        }
        row.update(text_2=t2, label=label)
        for side, subject in ((1, s1), (2, s2)):
            if subject in COLOURS:
                ext = "jpg" if i % 3 == 0 else "png"
                name = f"images/pair{i:02d}_{side}.{ext}"
                draw(subject, side).save(HERE / name)
                row[f"image_{side}"] = name
            else:
                row[f"image_{side}"] = "images/does_not_exist.png" if subject else ""
        rows.append(row)
    df = pd.DataFrame(rows)[["id_1", "text_1", "image_1", "id_2", "text_2", "image_2", "label"]]
    df.to_csv(HERE / "pairs.csv", index=False)
    df.to_parquet(HERE / "pairs.parquet", index=False)
    print(f"wrote {len(df)} pairs and {len(list(images.iterdir()))} images to {HERE}")


if __name__ == "__main__":
    main()
