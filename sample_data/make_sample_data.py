"""Make mmscore's demo data: 42 invented pairs of posts in the style of social-media posts, with small
pictures drawn by Pillow, and 30 plain-language "textbook" pairs.

Run from anywhere: ``python sample_data/make_sample_data.py``. Writes, next to this script:

- ``images/*.png``/``*.jpg``, ``pairs.csv`` and ``pairs.parquet`` (same rows; ids are strings): the demo.
- ``textbook_pairs.csv``: 30 texts-only pairs, 10 per label, written the way a textbook states entailment.

Every text and picture is made up here; nothing is copied from any dataset. The pairs were written from the
label definitions below, before any model scored them, and every row written is kept.

What the labels mean in the posts mmscore's default model was trained on:

- Implies: the second post is a repost or rewrite of the first: the same fact about the same event, with links,
  mentions or hashtags added or dropped, or the words changed.
- Contradictory: both posts speak of the same event at the same time, and a fact conflicts: a count, a date,
  a time, a score, a rank, or a statement and its negation.
- NoEntailment: everything else: unrelated posts, and posts that share a template but are about another
  subject, team, product or day.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parent

# Picture cells besides a subject: no picture at all, a path to no file, and a file that is not an image.
NO_PICTURE, MISSING_FILE, CORRUPT_FILE = "", "missing-file", "corrupt-file"

# (text_1, image_1 subject, text_2, image_2 subject, gold label)
PAIRS = [
    # Implies: a repost or rewrite of the same fact
    (
        "BREAKING: Route 9 bridge closed in both directions after a truck fire. Avoid the area. #traffic "
        "https://t.co/Qx81LmPa2c",
        "bridge",
        "Truck fire shuts the Route 9 bridge both ways, drivers told to avoid the area https://t.co/Zr4KpW7bN1",
        "bridge",
        "Implies",
    ),
    (
        "RT @NorthfieldLib: Our summer reading club starts June 14! Sign up at any branch 📚 #SummerReading",
        "book",
        "Summer reading club starts June 14, sign up at any Northfield library branch! #SummerReading "
        "https://t.co/a8LkQ2mZpe",
        "book",
        "Implies",
    ),
    (
        "Handmade oak cutting board, 40cm, food-safe oil finish #woodwork #handmade #kitchen #gift #oak "
        "https://t.co/Wd3nB7xQ1r",
        "board",
        "Handmade oak cutting board, 40cm, food safe oil finish #woodwork #handmade #kitchen #gift",
        "board",
        "Implies",
    ),
    (
        "Valmont health office: 312 new cases and 4 deaths reported in the last 24 hours. #COVID19 "
        "https://t.co/Hh5eTq0VbX",
        "chart",
        "312 new #COVID19 cases and 4 deaths in Valmont in the past 24 hrs, says the health office",
        "",
        "Implies",
    ),
    (
        "We're hiring! Northfield Transit is looking for licensed bus drivers for the 2021 season. Call 555-0142 "
        "to apply. #jobs #hiring",
        "bus",
        "Northfield Transit is hiring bus drivers for 2021. Interested? Call 555-0142 #jobs",
        "bus",
        "Implies",
    ),
    (
        "FINAL: Riverside Hawks 4, Lakeview Owls 2. The Hawks move to 10-3 on the season! 🏒 #GoHawks",
        "puck",
        "Hawks beat the Owls 4-2 tonight and improve to 10-3 🏒 https://t.co/Pk2mV8sXyA",
        "puck",
        "Implies",
    ),
    (
        "Polls are open until 9pm today. Bring photo ID. Find your polling station: https://t.co/Vt9rE2cLqA "
        "#ElectionDay",
        "ballot",
        "Reminder: you can vote until 9pm today, and don't forget your photo ID! #ElectionDay",
        "ballot",
        "Implies",
    ),
    (
        "Council approves new bike lanes on Harbour Street; work begins in May. #cycling",
        "bike",
        "New bike lanes are coming to Harbour St after today's council vote, construction starts in May "
        "https://t.co/Bk7sLn3Ewq",
        "bike",
        "Implies",
    ),
    (
        "Our new album 'Paper Lanterns' is out now on all platforms 🎶 https://t.co/Ms4aLb8Tzu",
        "notes",
        "'Paper Lanterns', the new album, is out now everywhere 🎶🎶 #NewMusic",
        NO_PICTURE,
        "Implies",
    ),
    (
        "Storm warning: gusts up to 110 km/h expected on the coast tonight. Secure loose objects. #weather",
        "rain",
        "Coastal storm tonight with gusts of up to 110 km/h, tie down anything loose #weather https://t.co/Wx6dRf1Gh0",
        "rain",
        "Implies",
    ),
    (
        "Tickets for Spring Jazz Night go on sale Friday at 10am! https://t.co/Jz3nTk5Ypo",
        "notes",
        "RT @HarbourJazzClub: Tickets for Spring Jazz Night go on sale Friday at 10am! https://t.co/Jz3nTk5Ypo",
        "notes",
        "Implies",
    ),
    (
        "The Museum of Flight extends its opening hours to 8pm on Thursdays, starting next week ✈️",
        "plane",
        "Starting next week the Museum of Flight is open until 8pm every Thursday ✈️ #museum",
        MISSING_FILE,
        "Implies",
    ),
    (
        "Water main break on Elm Ave: homes between 3rd and 7th St are without water until about 6pm.",
        NO_PICTURE,
        "Elm Ave water main break leaves 3rd-7th St without water until ~6pm, crews on site https://t.co/Em1wTr8Pzs",
        NO_PICTURE,
        "Implies",
    ),
    (
        "New episode 12 of the Garden Hour podcast: growing tomatoes in pots 🍅 listen here https://t.co/Gh12Tq7Pod",
        "tomato",
        "Episode 12 is up! Growing tomatoes in pots 🍅 #GardenHour #podcast",
        "tomato",
        "Implies",
    ),
    # Contradictory: the same event at the same time, a fact conflicts
    (
        "Lakeshore county: 146 new cases and 2 deaths reported today. #COVID19 https://t.co/Lc4sQ9aWbe",
        "chart",
        "Lakeshore county: 581 new cases and 11 deaths reported today. #COVID19 https://t.co/Lc7xP2nRtd",
        "chart",
        "Contradictory",
    ),
    (
        "FT: Portside United 2-0 Hill City. Three points at home! ⚽ #PUFC",
        "ball",
        "FT: Portside United 1-3 Hill City. A tough night at home. ⚽ #PUFC",
        "ball",
        "Contradictory",
    ),
    (
        "Spring Jazz Night is on Saturday 14 May at 8pm, doors open at 7pm 🎷 https://t.co/Sj1kQ4vNxm",
        "notes",
        "Spring Jazz Night is on Sunday 22 May at 8pm, doors open at 7pm 🎷 https://t.co/Sj1kQ4vNxm",
        "notes",
        "Contradictory",
    ),
    (
        "The Q3 staff town hall starts at 10:00 in Room 204. See you there!",
        NO_PICTURE,
        "The Q3 staff town hall starts at 14:30 in the main hall. See you there!",
        NO_PICTURE,
        "Contradictory",
    ),
    (
        "GIVEAWAY 🎉 One winner gets 3 signed books! RT and follow to enter 📚 #giveaway",
        "book",
        "GIVEAWAY 🎉 One winner gets 10 signed books! RT and follow to enter 📚 #giveaway",
        "book",
        "Contradictory",
    ),
    (
        "City Marathon update: 4,200 runners crossed the finish line today 🏃 #CityMarathon",
        "runner",
        "City Marathon update: 12,800 runners crossed the finish line today 🏃 #CityMarathon",
        "runner",
        "Contradictory",
    ),
    (
        "This weekend the Route 12 bus runs every 10 minutes. #transit",
        "bus",
        "This weekend the Route 12 bus runs every 30 minutes. #transit https://t.co/Rb12wKd9Lm",
        "bus",
        "Contradictory",
    ),
    (
        "Episode 7 of Harbour Lights airs tonight at 9pm on Channel 4 📺 #HarbourLights",
        "tv",
        "Episode 9 of Harbour Lights airs tonight at 9pm on Channel 4 📺 #HarbourLights",
        "tv",
        "Contradictory",
    ),
    (
        "The city pool opens for the season on June 1! ☀️ #summer",
        "pool",
        "The city pool will not open this season. ☀️ #summer",
        "pool",
        "Contradictory",
    ),
    (
        "Mayor Diaz confirms she will run for a second term. #election https://t.co/Md2tYv8Rqe",
        "podium",
        "Mayor Diaz confirms she will not run for a second term. #election",
        CORRUPT_FILE,
        "Contradictory",
    ),
    (
        "The teaser for 'Night Harbor' hits 500K views in its first day! 🎬 https://t.co/Nh5kVw2Tzq",
        "tv",
        "The teaser for 'Night Harbor' hits 2 million views in its first day! 🎬 https://t.co/Nh8pLx4Mcb",
        "tv",
        "Contradictory",
    ),
    (
        "Snow day: all Northfield schools are closed tomorrow ❄️ #snowday",
        "snow",
        "All Northfield schools are open as usual tomorrow, no snow closure ❄️",
        "school",
        "Contradictory",
    ),
    (
        "Proud to announce our bakery is ranked 5th in the city's best bread list 🥖 #local",
        "bread",
        "Proud to announce our bakery is ranked 1st in the city's best bread list 🥖 #local",
        "bread",
        "Contradictory",
    ),
    (
        "Trail race results: Ana Ruiz wins the women's 10K in 41:12 🏅 #trailrunning",
        "runner",
        "Trail race results: Ana Ruiz finishes second in the women's 10K in 43:50 #trailrunning",
        MISSING_FILE,
        "Contradictory",
    ),
    # NoEntailment: unrelated, or the same template about another subject or day
    (
        "Game day! Varsity girls soccer: Eastfield Falcons vs Westbrook Rams, 5pm at home. #GoFalcons",
        "ball",
        "Game day! JV boys soccer: Eastfield Falcons vs Westbrook Rams, 7pm at home. #GoFalcons",
        "ball",
        "NoEntailment",
    ),
    (
        "Care homes update (March 3): 12 homes with an active outbreak, 30 active cases among residents.",
        "chart",
        "Care homes update (April 3): 7 homes with an active outbreak, 18 active cases among residents.",
        "chart",
        "NoEntailment",
    ),
    (
        "Handmade oak cutting board, 40cm, food-safe oil finish #woodwork #handmade #kitchen",
        "board",
        "Handmade walnut serving tray with brass handles, 50cm #woodwork #handmade #kitchen",
        "tray",
        "NoEntailment",
    ),
    (
        "Our cat Miso turned ten today 🎂🐱",
        "cat",
        "Stock markets close the week higher as tech shares rally 📈 https://t.co/Sm4rKt8Wxe",
        "chart",
        "NoEntailment",
    ),
    (
        "The City Marathon has a new route this year, see the map: https://t.co/Mr2tQn6Lpd",
        "runner",
        "Recipe: lemon drizzle cake in 30 minutes 🍋 #baking",
        "cake",
        "NoEntailment",
    ),
    (
        "Library book sale this Saturday, 9am-1pm, all paperbacks $1 📚",
        "book",
        "The library now offers free 3D printing for members 📚 #makerspace",
        "book",
        "NoEntailment",
    ),
    (
        "B7 | Hawks add a run on a sacrifice fly to lead 3-1 ⚾",
        "bat",
        "T8 | The Owls' reliever strikes out the side to keep it 3-1 ⚾",
        "bat",
        "NoEntailment",
    ),
    (
        "The new Zento X phone has a 6.7-inch screen and two-day battery 📱 #tech",
        "phone",
        "Farmers expect a record apple harvest this autumn 🍎",
        "apple",
        "NoEntailment",
    ),
    (
        "You can vote on 6 May in person, by post or by proxy. #GetReadyToVote",
        "ballot",
        "Polling cards are being delivered this week, keep yours safe. #GetReadyToVote",
        NO_PICTURE,
        "NoEntailment",
    ),
    (
        "New episode 12 of the Garden Hour podcast: growing tomatoes in pots 🍅",
        "tomato",
        "New episode 13 of the Garden Hour podcast: pruning roses in winter 🌹",
        "rose",
        "NoEntailment",
    ),
    (
        "The summer ferry timetable is now online ⛴️ https://t.co/Fy5tNs2Kqw",
        "boat",
        "Harbour festival fireworks start at 10pm tonight 🎆 #harbourfest",
        MISSING_FILE,
        "NoEntailment",
    ),
    (
        "Free yoga in Central Park resumes Sunday at 9am 🧘",
        NO_PICTURE,
        "The north gate of Central Park is closed for repairs this week.",
        NO_PICTURE,
        "NoEntailment",
    ),
    (
        "Congrats to our robotics team on reaching the state finals! 🤖 #proud",
        "robot",
        "Congrats to our debate team on reaching the state finals! 🎤 #proud",
        "podium",
        "NoEntailment",
    ),
    (
        "Road work on Main St starts Monday; expect delays near the station 🚧",
        "road",
        "A new café opens on Main St next to the station this week ☕",
        "cup",
        "NoEntailment",
    ),
]

# Plain-language pairs, the way a textbook states entailment (texts only).
TEXTBOOK_PAIRS = [
    ("The river bridge is closed to traffic all weekend.", "The bridge over the river is shut till Monday.", "Implies"),
    ("New bakery opens on Main Street this Friday.", "Friday: grand opening of the Main St bakery.", "Implies"),
    ("City council approves the new bike lanes.", "Bike lanes are coming to the city after today's vote.", "Implies"),
    ("Train service resumes after the storm.", "Trains are running again now the storm has passed.", "Implies"),
    ("The festival starts at noon on Saturday.", "The Saturday festival kicks off at 12.", "Implies"),
    ("The zoo welcomed a baby giraffe.", "A giraffe calf was born at the zoo.", "Implies"),
    ("Café owners in Zürich celebrate a record summer.", "Summer was a record season for cafés in Zürich.", "Implies"),
    ("Ferry tickets are half price in June.", "June ferry fares are cut by 50%.", "Implies"),
    ("She finished the marathon in under three hours.", "She ran the marathon in less than three hours.", "Implies"),
    ("The shop is closed on Sundays.", "You cannot shop there on a Sunday.", "Implies"),
    ("Our team won the final 3-1 tonight!", "Final score tonight: we lost 1-3.", "Contradictory"),
    ("Sunny skies expected across the coast today.", "Heavy rain all day on the coast today.", "Contradictory"),
    ("The library will stay open until midnight.", "The library closes at 6 pm today.", "Contradictory"),
    ("Power is back in all neighbourhoods.", "Thousands are still without power tonight.", "Contradictory"),
    ("Schools are closed tomorrow due to snow.", "All schools open as usual tomorrow.", "Contradictory"),
    ("The mayor resigned this morning.", "The mayor says she will not resign.", "Contradictory"),
    ("The concert was sold out.", "Plenty of tickets were left for the concert.", "Contradictory"),
    ("He has never been to Paris.", "He visited Paris last year.", "Contradictory"),
    ("The meeting starts at 9 am.", "The meeting starts at 2 pm.", "Contradictory"),
    ("The new phone is cheaper than the old one.", "The new phone costs more than the old one.", "Contradictory"),
    ("The museum adds a dinosaur hall.", "Tickets for the spring concert are on sale.", "NoEntailment"),
    ("Our cat turned ten today.", "Stock markets ended the week higher.", "NoEntailment"),
    ("Marathon route changes this year.", "Recipe: lemon cake in 30 minutes.", "NoEntailment"),
    ("New phone released with a bigger screen.", "Farmers expect a good apple harvest.", "NoEntailment"),
    ("The highway expansion is finished.", "A new park opens downtown.", "NoEntailment"),
    ("A new exhibit on space travel opens today.", "Local bakery wins a bread award.", "NoEntailment"),
    ("The team signed a new goalkeeper.", "The stadium will host a concert in July.", "NoEntailment"),
    ("It rained all night in the valley.", "The valley school has a new head teacher.", "NoEntailment"),
    ("The bridge reopens on Monday.", "The city plans a second bridge by 2030.", "NoEntailment"),
    ("She adopted a dog last week.", "Her brother moved to Canada.", "NoEntailment"),
]

COLOURS = {
    "bridge": (120, 120, 140),
    "book": (120, 60, 30),
    "board": (170, 120, 70),
    "tray": (90, 55, 30),
    "chart": (20, 120, 200),
    "bus": (230, 180, 20),
    "puck": (20, 20, 20),
    "ballot": (240, 240, 240),
    "bike": (200, 40, 40),
    "notes": (40, 40, 40),
    "rain": (60, 90, 160),
    "plane": (200, 200, 220),
    "tomato": (220, 40, 30),
    "ball": (30, 160, 60),
    "runner": (240, 120, 20),
    "tv": (50, 50, 70),
    "pool": (60, 170, 220),
    "podium": (140, 30, 40),
    "snow": (245, 245, 255),
    "school": (180, 80, 60),
    "bread": (200, 150, 80),
    "cat": (160, 160, 160),
    "cake": (250, 230, 150),
    "bat": (150, 100, 50),
    "phone": (30, 30, 30),
    "apple": (200, 20, 30),
    "rose": (200, 30, 90),
    "boat": (30, 100, 180),
    "robot": (130, 140, 150),
    "road": (80, 80, 80),
    "cup": (110, 70, 40),
}
ROUND = ("ball", "apple", "tomato", "puck", "rose")
STRIPED = ("rain", "snow")


def draw(subject: str, variant: int) -> Image.Image:
    """A small picture: a sky/ground background and a coloured shape standing for ``subject``."""
    im = Image.new("RGB", (160, 120), (135 + 20 * variant, 190, 235))
    d = ImageDraw.Draw(im)
    d.rectangle([0, 80, 160, 120], fill=(90, 150, 70))
    colour = COLOURS[subject]
    if subject in ROUND:
        d.ellipse([50 + 5 * variant, 20, 110 + 5 * variant, 80], fill=colour)
    elif subject in STRIPED:
        for x in range(5, 160, 12):
            d.line([x, 10, x - 6, 70], fill=colour, width=2)
    else:
        d.rectangle([30 + 8 * variant, 30, 130, 90], fill=colour)
        d.polygon([(30, 30), (80, 5), (130, 30)], fill=tuple(c // 2 for c in colour))
    d.text((6, 100), subject, fill=(255, 255, 255))
    return im


def picture_cell(subject: str, name: str, images: Path) -> str:
    """The ``image_*`` cell for ``subject``: a drawn picture saved as ``name``, or a broken reference."""
    if subject in COLOURS:
        draw(subject, 1 if name.endswith(("_1.jpg", "_1.png")) else 2).save(images / name)
        return f"images/{name}"
    if subject == CORRUPT_FILE:  # bytes that are not a picture: the row reports not_an_image
        (images / name).write_bytes(b"this is not a picture\n" * 8)
        return f"images/{name}"
    return "images/does_not_exist.png" if subject == MISSING_FILE else ""


def main() -> None:
    images = HERE / "images"
    images.mkdir(exist_ok=True)
    for old in images.iterdir():
        old.unlink()
    rows = []
    for i, (t1, s1, t2, s2, label) in enumerate(PAIRS):
        ext = "jpg" if i % 3 == 0 else "png"
        rows.append(
            {
                "id_1": str(1_700_000_000_000_000_000 + 2 * i),
                "text_1": t1,
                "image_1": picture_cell(s1, f"pair{i:02d}_1.{ext}", images),
                "id_2": str(1_700_000_000_000_000_001 + 2 * i),
                "text_2": t2,
                "image_2": picture_cell(s2, f"pair{i:02d}_2.{ext}", images),
                "label": label,
            }
        )
    df = pd.DataFrame(rows)
    df.to_csv(HERE / "pairs.csv", index=False)
    df.to_parquet(HERE / "pairs.parquet", index=False)
    textbook = pd.DataFrame(TEXTBOOK_PAIRS, columns=["text_1", "text_2", "label"])
    textbook.insert(0, "pair_id", [f"t{i:02d}" for i in range(len(textbook))])
    textbook.to_csv(HERE / "textbook_pairs.csv", index=False)
    print(f"wrote {len(df)} pairs, {len(list(images.iterdir()))} images and {len(textbook)} textbook pairs to {HERE}")


if __name__ == "__main__":
    main()
