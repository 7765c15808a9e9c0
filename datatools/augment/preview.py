"""Contact sheet for eyeballing a recipe: each original beside its variants, masks overlaid in class colours."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from datatools.files import read_image, to_rgb
from datatools.palette import Palette

TILE = 160  # tile height in pixels
CAPTION = 18


def overlay(image: np.ndarray, mask: np.ndarray, palette: Palette, opacity: float = 0.45) -> np.ndarray:
    """RGB image with every non-background mask pixel blended towards its class colour."""
    rgb = to_rgb(image).astype(np.float32)
    colors = palette.colorize(mask).astype(np.float32)
    fg = (mask > 0)[:, :, None]
    out = np.where(fg, rgb * (1 - opacity) + colors * opacity, rgb)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _tile(image: np.ndarray, caption: str) -> np.ndarray:
    h, w = image.shape[:2]
    tw = max(1, min(2 * TILE, round(w * TILE / h)))
    small = cv2.resize(image, (tw, TILE), interpolation=cv2.INTER_AREA)
    band = np.full((CAPTION, tw, 3), 255, np.uint8)
    cv2.putText(band, caption[:40], (3, CAPTION - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (0, 0, 0), 1, cv2.LINE_AA)
    return np.vstack([small, band])


def _caption(row: Mapping[str, Any]) -> str:
    """'original <id>' or '<op>: <parameter values>' (e.g. 'rotate: 30', 'elastic: 1300, 7')."""
    aug = row["aug"]
    if aug is None:
        return f"original {row['id']}"
    values = [f"{v:g}" if isinstance(v, float) else str(v) for k, v in aug.items() if k not in ("op", "seed")]
    return f"{aug['op']}: {', '.join(values)}" if values else aug["op"]


def contact_sheet(
    root: Path, rows: Sequence[Mapping[str, Any]], palette: Palette, *, max_parents: int = 4, max_variants: int = 8
) -> np.ndarray:
    """One line per original (defective ones first): the original, then up to `max_variants` derived rows."""
    children: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    by_id = {r["id"]: r for r in rows}
    for r in rows:
        if r["parent"] is not None:
            children[r["parent"]].append(r)
    parents = sorted(children, key=lambda pid: (by_id.get(pid, {}).get("label", "good") == "good", pid))[:max_parents]
    lines = []
    for pid in parents:
        line_rows = ([by_id[pid]] if pid in by_id else []) + sorted(children[pid], key=lambda r: r["id"])[:max_variants]
        tiles = []
        for r in line_rows:
            image = read_image(Path(root) / r["image"])
            mask = palette.decode(to_rgb(read_image(Path(root) / r["mask"])))
            tiles.append(_tile(overlay(image, mask, palette), _caption(r)))
        gap = np.full((TILE + CAPTION, 4, 3), 255, np.uint8)
        lines.append(np.hstack([x for t in tiles for x in (t, gap)]))
    if not lines:
        return np.full((TILE, TILE, 3), 255, np.uint8)
    width = max(line.shape[1] for line in lines)
    padded = [np.pad(line, ((0, 4), (0, width - line.shape[1]), (0, 0)), constant_values=255) for line in lines]
    return np.vstack(padded)
