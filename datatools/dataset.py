"""The dataset directory: `dataset.json` + `manifest.jsonl` + `images/` + `masks/`.

Every command reads and writes this unit. Rows are plain dicts with a fixed key order so that the
manifest bytes are identical for identical inputs.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from datatools import __version__
from datatools.errors import InputError, Problem
from datatools.files import atomic_write_text, committing, encode_png, read_image, write_bytes
from datatools.palette import Palette

DATASET_JSON = "dataset.json"
MANIFEST = "manifest.jsonl"
SPLITS = ("train", "valid", "test")
ROW_KEYS = (
    "id",
    "image",
    "mask",
    "image_sha256",
    "mask_sha256",
    "width",
    "height",
    "label",
    "classes",
    "group",
    "split",
    "source",
    "parent",
    "aug",
)


def created_by(argv: list[str] | None = None) -> dict[str, Any]:
    return {"tool": "defectkit", "version": __version__, "argv": list(sys.argv if argv is None else argv)}


def make_row(**fields: Any) -> dict[str, Any]:
    """A manifest row with every contract key, in contract order (extra keys follow, sorted)."""
    missing = [k for k in ROW_KEYS if k not in fields and k not in ("split", "parent", "aug")]
    if missing:
        raise TypeError(f"manifest row lacks {missing}")
    row = {k: fields.get(k) for k in ROW_KEYS}
    for k in sorted(set(fields) - set(ROW_KEYS)):
        row[k] = fields[k]
    return row


def write_sample(
    root: Path,
    sample_id: str,
    image: np.ndarray,
    mask: np.ndarray,
    palette: Palette,
    *,
    label: str | None = None,
    group: str | None = None,
    timings: dict[str, float] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """Write `images/<id>.png` and the colourised `masks/<id>.png` under `root`; return the manifest row.

    `mask` holds class indices. The row's hashes, size, `classes` and `label` come from the pixels;
    `group` defaults to the id; `fields` supply `source` and, for derived rows, `split`, `parent`, `aug`.
    `timings`, when given, accumulates the seconds spent in "png_encode" and "write".
    """
    import time

    t0 = time.perf_counter()
    image_png, mask_png = encode_png(image), encode_png(palette.colorize(mask))
    t1 = time.perf_counter()
    image_rel, mask_rel = f"images/{sample_id}.png", f"masks/{sample_id}.png"
    image_sha = write_bytes(Path(root) / image_rel, image_png)
    mask_sha = write_bytes(Path(root) / mask_rel, mask_png)
    if timings is not None:
        timings["png_encode"] = timings.get("png_encode", 0.0) + t1 - t0
        timings["write"] = timings.get("write", 0.0) + time.perf_counter() - t1
    classes = palette.counts(mask)
    return make_row(
        id=sample_id,
        image=image_rel,
        mask=mask_rel,
        image_sha256=image_sha,
        mask_sha256=mask_sha,
        width=int(image.shape[1]),
        height=int(image.shape[0]),
        label=image_label(classes, label),
        classes=classes,
        group=group or sample_id,
        **fields,
    )


def image_label(classes: Mapping[str, int], forced: str | None = None) -> str:
    """`"good"` when no defect pixels, else the defect names present joined by ','."""
    if forced is not None:
        return forced
    return ",".join(sorted(classes)) if classes else "good"


def dumps_row(row: Mapping[str, Any]) -> str:
    return json.dumps(row, ensure_ascii=False, separators=(",", ":"))


def write_manifest(path: Path, rows: Iterable[Mapping[str, Any]]) -> None:
    """Write rows sorted by id, one JSON object per line, atomically."""
    rows = sorted(rows, key=lambda r: r["id"])
    atomic_write_text(path, "".join(dumps_row(r) + "\n" for r in rows))


def write_info(path: Path, info: Mapping[str, Any]) -> None:
    atomic_write_text(path, json.dumps(info, ensure_ascii=False, indent=2) + "\n")


def new_info(
    name: str, palette: Palette, source: Mapping[str, Any], *, skipped: list[Problem] | None = None, **extra: Any
) -> dict[str, Any]:
    info: dict[str, Any] = {
        "name": name,
        "classes": palette.to_json(),
        "source": dict(source),
        "split": None,
        "augment": None,
        "skipped": [p.to_json() for p in sorted(skipped or [])],
    }
    info.update(extra)
    info["created_by"] = created_by()
    return info


@dataclass
class Dataset:
    """A loaded dataset directory."""

    root: Path
    info: dict[str, Any]
    rows: list[dict[str, Any]]
    palette: Palette = field(init=False)

    def __post_init__(self) -> None:
        self.palette = Palette.from_json(self.info["classes"])

    @classmethod
    def load(cls, root: Path) -> Dataset:
        """Read `dataset.json` and `manifest.jsonl`; every problem is reported at once."""
        root = Path(root)
        if not root.is_dir():
            raise InputError("dataset directory not found", str(root))
        problems: list[Problem] = []
        info: dict[str, Any] | None = None
        info_path = root / DATASET_JSON
        try:
            info = json.loads(info_path.read_text(encoding="utf-8"))
            if not isinstance(info, dict) or not isinstance(info.get("classes"), list):
                problems.append(Problem(str(info_path), "expected an object with a 'classes' list"))
                info = None
        except FileNotFoundError:
            problems.append(Problem(str(info_path), "missing (is this a defectkit dataset directory?)"))
        except (OSError, json.JSONDecodeError) as e:
            problems.append(Problem(str(info_path), f"invalid JSON: {e}"))
        rows: list[dict[str, Any]] = []
        man_path = root / MANIFEST
        try:
            with open(man_path, encoding="utf-8") as f:
                for n, line in enumerate(f, 1):
                    if not line.strip():
                        continue
                    try:
                        row = json.loads(line)
                    except json.JSONDecodeError as e:
                        problems.append(Problem(f"{man_path}:{n}", f"invalid JSON: {e}"))
                        continue
                    missing = [k for k in ROW_KEYS if k not in row] if isinstance(row, dict) else list(ROW_KEYS)
                    if missing:
                        problems.append(Problem(f"{man_path}:{n}", f"row lacks keys {missing}"))
                        continue
                    rows.append(row)
        except FileNotFoundError:
            problems.append(Problem(str(man_path), "missing"))
        if info is not None:
            try:
                Palette.from_json(info["classes"])
            except InputError as e:
                problems.extend(Problem(str(info_path), p.reason) for p in e.problems)
            except (KeyError, TypeError, ValueError) as e:
                problems.append(Problem(str(info_path), f"malformed 'classes': {e}"))
        if problems:
            raise InputError(problems)
        assert info is not None
        return cls(root, info, rows)

    # convenience ----------------------------------------------------------------------------
    @property
    def is_split(self) -> bool:
        return any(r["split"] is not None for r in self.rows)

    def rows_in(self, split: str | None) -> list[dict[str, Any]]:
        return [r for r in self.rows if split is None or r["split"] == split]

    def read_image(self, row: Mapping[str, Any]) -> np.ndarray:
        return read_image(self.root / row["image"])

    def read_mask(self, row: Mapping[str, Any]) -> np.ndarray:
        """The row's mask as H×W class indices (exact palette decode)."""
        rgb = read_image(self.root / row["mask"])
        if rgb.ndim == 2:
            rgb = np.repeat(rgb[:, :, None], 3, axis=2)
        return self.palette.decode(rgb)

    def save(self) -> None:
        """Rewrite manifest then dataset.json in place (each atomically; Ctrl-C waits for both)."""
        with committing(self.root / MANIFEST):
            write_manifest(self.root / MANIFEST, self.rows)
            write_info(self.root / DATASET_JSON, self.info)
