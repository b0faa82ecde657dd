"""Rendered glyphs written as an image folder: a labelled image set this project has never trained on, for
testing training on a user's own data (issue 19).

Each class is one character (upper- and lower-case Latin letters and digits, in nested folders such as
`upper/A`, so a class is a folder path); each image renders it in one of Debian's DejaVu fonts (22
faces: sans, serif, mono; bold, oblique, condensed, light) at a random size, rotation and position,
with pixel noise. Why glyphs: many classes whose members share a shape but not their pixels, so raw
pixel distance finds a class only loosely, while an encoder that learned what makes glyphs alike also
tells apart glyphs it never saw.
"""

from __future__ import annotations

import string
from pathlib import Path

import numpy as np

FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
CLASSES = [("upper", c) for c in string.ascii_uppercase] + [("lower", c) for c in string.ascii_lowercase] + \
          [("digit", c) for c in string.digits]


def fonts() -> list[Path]:
    found = sorted(FONT_DIR.glob("*.ttf"))
    if not found:
        raise FileNotFoundError(f"no fonts in {FONT_DIR}: install Debian's fonts-dejavu-core and fonts-dejavu-extra")
    return found


def render(char: str, font_path: Path, size: int, rng: np.random.Generator) -> np.ndarray:
    """One (size, size) uint8 grayscale image of `char`: random scale, rotation, shift and noise."""
    from PIL import Image, ImageDraw, ImageFont

    canvas = 2 * size
    font = ImageFont.truetype(str(font_path), int(canvas * rng.uniform(0.45, 0.7)))
    im = Image.new("L", (canvas, canvas), 0)
    draw = ImageDraw.Draw(im)
    left, top, right, bottom = draw.textbbox((0, 0), char, font=font)
    draw.text(((canvas - (right - left)) / 2 - left, (canvas - (bottom - top)) / 2 - top), char, fill=255, font=font)
    im = im.rotate(rng.uniform(-15, 15), resample=Image.Resampling.BILINEAR,
                   translate=(rng.uniform(-0.12, 0.12) * canvas, rng.uniform(-0.12, 0.12) * canvas))
    a = np.asarray(im.resize((size, size), Image.Resampling.BILINEAR), dtype=np.float32)
    a = a + rng.normal(0, 12, a.shape)
    return np.clip(a, 0, 255).astype(np.uint8)


def write_glyph_folder(root: Path, *, classes: int = 48, per_class: int = 30, size: int = 32, seed: int = 0) -> list[str]:
    """Write `per_class` PNGs for each of the first `classes` characters under root/<kind>/<char>/; returns
    the class paths. Deterministic for a seed."""
    from PIL import Image

    if not 1 <= classes <= len(CLASSES):
        raise ValueError(f"classes must be in [1, {len(CLASSES)}], got {classes}")
    rng = np.random.default_rng(seed)
    faces = fonts()
    order = rng.permutation(len(CLASSES))[:classes]
    names = []
    for kind, char in (CLASSES[i] for i in order):
        # lower- and upper-case folders differ by path, so case-insensitive file systems keep them apart
        folder = root / kind / (f"{char}_" if kind == "lower" else char)
        folder.mkdir(parents=True, exist_ok=True)
        for n in range(per_class):
            Image.fromarray(render(char, faces[int(rng.integers(len(faces)))], size, rng)).save(folder / f"{n:04d}.png")
        names.append(folder.relative_to(root).as_posix())
    return names
