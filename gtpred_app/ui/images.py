"""Images as the pages show them: small PNG thumbnails as data URIs (for table cells), made on
first request and cached, and one image enlarged with hard pixels (a 32 px digit stays readable).

No streamlit here (PIL only), so it is tested without a session.
"""

from __future__ import annotations

import base64
import io
import os
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd
    from PIL.Image import Image as PILImage


@lru_cache(maxsize=4096)
def _thumbnail(path: str, mtime_ns: int, size: int, side: int) -> str:
    from PIL import Image

    with Image.open(path) as image:
        image = image.convert("RGB") if image.mode not in ("RGB", "L") else image.copy()
    if max(image.size) < side:  # tiny images (digits) are enlarged with hard pixels, not blur
        scale = side / max(image.size)
        image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.NEAREST)
    else:
        image.thumbnail((side, side))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def thumbnail_data_uri(path: str | Path, side: int = 64) -> str | None:
    """A PNG data URI of ``path`` fitted to ``side`` pixels, made on first request and cached
    (keyed by path, modification time and size, so a changed file gets a new thumbnail).
    None when the file cannot be read or decoded."""
    try:
        stat = os.stat(path)
        return _thumbnail(str(path), stat.st_mtime_ns, stat.st_size, side)
    except (OSError, ValueError, SyntaxError):  # PIL raises these for unreadable images
        return None


def with_thumbnails(table: "pd.DataFrame", root: str | Path, side: int = 64) -> "pd.DataFrame":
    """``table`` (with a ``file`` column relative to ``root``) plus a leading ``thumbnail``.

    Give it one page of a table: only the rows shown are turned into thumbnails."""
    root = Path(root)
    out = table.copy()
    out.insert(0, "thumbnail", [thumbnail_data_uri(root / rel, side) for rel in table["file"]])
    return out


def enlarged_image(path: str | Path, min_side: int = 256) -> "PILImage":
    """The image at ``path`` at least ``min_side`` pixels on its long side (small images
    scaled up by a whole factor with hard pixels)."""
    from PIL import Image

    with Image.open(path) as image:
        image = image.convert("RGB") if image.mode not in ("RGB", "L") else image.copy()
    if max(image.size) < min_side:
        scale = max(1, min_side // max(image.size))
        image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
    return image
