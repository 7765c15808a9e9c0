"""Class lists and their colours: the only place that maps class indices to RGB and back.

Background is index 0 and black. Masks are held in memory as 2-D class-index arrays and colourised
only when written; decoding a colour mask is exact (a colour outside the palette is an error).
"""

from __future__ import annotations

import colorsys
import json
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from datatools.errors import InputError, Problem

BACKGROUND = "background"
DEFAULT_COLORS: tuple[tuple[int, int, int], ...] = (
    (0, 0, 255),
    (255, 0, 0),
    (0, 255, 0),
    (255, 255, 0),
    (0, 255, 255),
    (255, 0, 255),
    (255, 128, 0),
    (128, 0, 255),
    (0, 128, 0),
    (128, 0, 0),
    (0, 0, 128),
    (128, 128, 0),
    (0, 128, 128),
    (128, 0, 128),
    (255, 128, 128),
    (128, 255, 128),
    (128, 128, 255),
    (192, 192, 192),
)


def default_color(i: int) -> tuple[int, int, int]:
    """Colour of the i-th non-background class (0-based); beyond the fixed list, golden-ratio hues."""
    if i < len(DEFAULT_COLORS):
        return DEFAULT_COLORS[i]
    k = i - len(DEFAULT_COLORS)
    hue = (k * 0.618033988749895) % 1.0
    value = 0.95 - 0.25 * ((k // 7) % 3)
    r, g, b = colorsys.hsv_to_rgb(hue, 0.85, value)
    return (round(r * 255), round(g * 255), round(b * 255))


@dataclass(frozen=True)
class ClassInfo:
    index: int
    name: str
    color: tuple[int, int, int]

    def to_json(self) -> dict:
        return {"index": self.index, "name": self.name, "color": list(self.color)}


class Palette:
    """An ordered list of classes, index 0 = background (black)."""

    def __init__(self, classes: Sequence[ClassInfo]):
        self.classes: tuple[ClassInfo, ...] = tuple(classes)
        problems = validate_classes(self.classes)
        if problems:
            raise InputError(problems)
        self.colors = np.array([c.color for c in self.classes], dtype=np.uint8)
        keys = _pack(self.colors)
        self._order = np.argsort(keys)
        self._sorted_keys = keys[self._order]

    # construction ---------------------------------------------------------------------------
    @classmethod
    def from_names(
        cls, names: Sequence[str], overrides: Mapping[str, Sequence[int]] | None = None, *, source: str = ""
    ) -> Palette:
        """Background + `names` with default colours, replaced by `overrides` where given."""
        overrides = dict(overrides or {})
        unknown = sorted(set(overrides) - set(names) - {BACKGROUND})
        problems = [
            Problem(source or "palette", f"palette names unknown class {n!r} (classes: {', '.join(names)})")
            for n in unknown
        ]
        if BACKGROUND in overrides and tuple(overrides[BACKGROUND]) != (0, 0, 0):
            problems.append(Problem(source or "palette", "background must stay black (0, 0, 0)"))
        if problems:
            raise InputError(problems)
        classes = [ClassInfo(0, BACKGROUND, (0, 0, 0))]
        for i, name in enumerate(names):
            color = overrides.get(name, default_color(i))
            classes.append(ClassInfo(i + 1, name, _color(color, name, source)))
        return cls(classes)

    @classmethod
    def from_json(cls, items: Sequence[Mapping]) -> Palette:
        """From `dataset.json["classes"]`."""
        return cls([ClassInfo(int(c["index"]), str(c["name"]), tuple(int(v) for v in c["color"])) for c in items])

    def to_json(self) -> list[dict]:
        return [c.to_json() for c in self.classes]

    # queries --------------------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        return [c.name for c in self.classes]

    @property
    def defect_names(self) -> list[str]:
        return [c.name for c in self.classes[1:]]

    def __len__(self) -> int:
        return len(self.classes)

    def index(self, name: str) -> int:
        for c in self.classes:
            if c.name == name:
                return c.index
        raise KeyError(name)

    # pixels ---------------------------------------------------------------------------------
    def colorize(self, mask: np.ndarray) -> np.ndarray:
        """H×W class indices → H×W×3 RGB uint8."""
        if mask.size and int(mask.max()) >= len(self.classes):
            raise ValueError(f"mask holds class index {int(mask.max())}, palette has {len(self.classes)} classes")
        return self.colors[mask]

    def decode(self, rgb: np.ndarray) -> np.ndarray:
        """H×W×3 RGB → H×W uint8 class indices; raises ValueError naming colours not in the palette."""
        if rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError(f"expected an RGB mask, got shape {rgb.shape}")
        keys = _pack(rgb.reshape(-1, 3))
        pos = np.searchsorted(self._sorted_keys, keys)
        pos = np.minimum(pos, len(self._sorted_keys) - 1)
        ok = self._sorted_keys[pos] == keys
        if not ok.all():
            bad = np.unique(keys[~ok])[:5]
            colors = ", ".join(str(((k >> 16) & 255, (k >> 8) & 255, k & 255)) for k in bad.tolist())
            raise ValueError(f"{int((~ok).sum())} pixels have colours not in the palette, e.g. {colors}")
        return self._order[pos].astype(np.uint8).reshape(rgb.shape[:2])

    def stray_colors(self, rgb: np.ndarray) -> list[tuple[tuple[int, int, int], int]]:
        """Colours of `rgb` (H×W×3) that are not in the palette, with pixel counts, most common first."""
        keys, counts = np.unique(_pack(rgb.reshape(-1, 3)), return_counts=True)
        stray = ~np.isin(keys, self._sorted_keys)
        order = np.argsort(-counts[stray], kind="stable")
        return [(_unpack(int(k)), int(n)) for k, n in zip(keys[stray][order], counts[stray][order], strict=True)]

    def decode_nearest(self, rgb: np.ndarray, max_distance: float | None = None) -> tuple[np.ndarray, int]:
        """RGB → class indices, each colour mapped to the nearest palette colour (Euclidean in RGB).

        The original FlexUNet dataset reader does the same (argmin of squared distance, ties to the lower
        index). Returns (mask, number of pixels whose colour was not exact). Colours farther than
        `max_distance` from every palette colour raise ValueError listing them.
        """
        if rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError(f"expected an RGB mask, got shape {rgb.shape}")
        keys, inverse = np.unique(_pack(rgb.reshape(-1, 3)), return_inverse=True)
        colors = np.stack([(keys >> 16) & 255, (keys >> 8) & 255, keys & 255], axis=1).astype(np.int64)
        d2 = ((colors[:, None, :] - self.colors[None, :, :].astype(np.int64)) ** 2).sum(axis=2)
        nearest = d2.argmin(axis=1)
        best = d2[np.arange(len(keys)), nearest]
        counts = np.bincount(inverse.ravel(), minlength=len(keys))
        if max_distance is not None:
            far = best > max_distance**2
            if far.any():
                idx = np.flatnonzero(far)[np.argsort(-counts[far], kind="stable")][:5]
                listed = ", ".join(f"{_unpack(int(keys[i]))} ×{int(counts[i])}" for i in idx)
                raise ValueError(
                    f"{int(counts[far].sum())} pixels are farther than {max_distance:g} from every palette colour,"
                    f" e.g. {listed}"
                )
        snapped = int(counts[best > 0].sum())
        return nearest[inverse].astype(np.uint8).reshape(rgb.shape[:2]), snapped

    def counts(self, mask: np.ndarray) -> dict[str, int]:
        """{class name: pixel count} for every non-background class present."""
        hist = np.bincount(mask.ravel(), minlength=len(self.classes))
        return {self.classes[i].name: int(hist[i]) for i in range(1, len(self.classes)) if hist[i]}


def validate_classes(classes: Sequence[ClassInfo]) -> list[Problem]:
    problems: list[Problem] = []
    if not classes or classes[0].name != BACKGROUND or classes[0].color != (0, 0, 0):
        problems.append(Problem("palette", "class 0 must be 'background' coloured (0, 0, 0)"))
    if len(classes) > 256:
        problems.append(Problem("palette", f"at most 255 classes are supported, got {len(classes) - 1}"))
    seen_colors: dict[tuple[int, int, int], str] = {}
    seen_names: set[str] = set()
    for i, c in enumerate(classes):
        if c.index != i:
            problems.append(Problem("palette", f"class {c.name!r} has index {c.index}, expected {i}"))
        if c.name in seen_names:
            problems.append(Problem("palette", f"class name {c.name!r} appears twice"))
        seen_names.add(c.name)
        if any(not 0 <= v <= 255 for v in c.color) or len(c.color) != 3:
            problems.append(Problem("palette", f"class {c.name!r}: colour {list(c.color)} is not 3 values 0-255"))
        if i > 0 and c.color == (0, 0, 0):
            problems.append(Problem("palette", f"class {c.name!r} is coloured black, the background colour"))
        elif c.color in seen_colors:
            problems.append(
                Problem("palette", f"classes {seen_colors[c.color]!r} and {c.name!r} share colour {list(c.color)}")
            )
        seen_colors.setdefault(c.color, c.name)
    return problems


def load_palette_file(path: Path) -> dict[str, tuple[int, int, int]]:
    """Read `{class name: [r, g, b]}` from TOML or JSON; `[r, g, b]` may also be a '#rrggbb' string."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise InputError(f"cannot read palette file: {e.strerror or e}", str(path)) from None
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as e:
        raise InputError(f"invalid {'JSON' if path.suffix.lower() == '.json' else 'TOML'}: {e}", str(path)) from None
    if isinstance(data, dict) and "classes" in data and isinstance(data["classes"], dict):
        data = data["classes"]
    if not isinstance(data, dict):
        raise InputError("expected a table {class name: [r, g, b]}", str(path))
    out: dict[str, tuple[int, int, int]] = {}
    problems = []
    for name, value in data.items():
        try:
            out[str(name)] = _color(value, name, str(path))
        except InputError as e:
            problems.extend(e.problems)
    if problems:
        raise InputError(problems)
    return out


def parse_hex(value: str) -> tuple[int, int, int]:
    v = value.strip().lstrip("#")
    if len(v) != 6:
        raise ValueError(f"not a #rrggbb colour: {value!r}")
    return (int(v[0:2], 16), int(v[2:4], 16), int(v[4:6], 16))


def _color(value: object, name: str, source: str) -> tuple[int, int, int]:
    try:
        if isinstance(value, str):
            return parse_hex(value)
        rgb = tuple(int(v) for v in value)  # type: ignore[union-attr]
        if len(rgb) != 3 or any(not 0 <= v <= 255 for v in rgb):
            raise ValueError
        return rgb  # type: ignore[return-value]
    except (TypeError, ValueError):
        raise InputError(f"class {name!r}: {value!r} is not a colour [r, g, b] or '#rrggbb'", source) from None


def _unpack(key: int) -> tuple[int, int, int]:
    return ((key >> 16) & 255, (key >> 8) & 255, key & 255)


def _pack(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(np.uint32, copy=False)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
