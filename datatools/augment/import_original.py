"""`defectkit import-augment`: an original `generator.config` (OfflineImageMaskAugmentor, INI) as our recipe TOML.

The original reads each value with `eval` and falls back to a default when the key is missing or does not
evaluate; here values are Python literals (`ast.literal_eval`, never `eval`) with the original's defaults.
Every op the original applies, in its order (hflip, vflip, rotation, shrinks, shears, deformation,
distortion; also the FlexUNet augmentor's barrdistortion, pincdistortion, brightening), becomes an
`[[ops]]` table with a comment saying how it was mapped. Elastic alpha is rescaled with `equivalent_alpha`
so that pixels move by the same displacement std (the original's field is ~10× weaker at equal numbers),
grid and radial distortions are matched by displacement std too (approximate: different field shapes).
What cannot be mapped is listed in `warnings` (and as comments in the TOML).
"""

from __future__ import annotations

import ast
import configparser
import json
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from datatools.augment.distort import distort_maps, pincushion_folds, radial_maps
from datatools.augment.elastic import displacement_std, equivalent_alpha, original_displacement_std
from datatools.augment.recipe import parse_recipe
from datatools.dataset import SPLITS
from datatools.errors import InputError, Problem
from datatools.files import atomic_write_text

ORIGINAL_SEED = 137  # the original's self.seed
KNOWN = {
    "dataset": {"image_width", "image_height", "image_channel", "dataset_dir", "augmented_dir", "no_augmentation"},
    "augmentor": {
        "hflip",
        "vflip",
        "rotation",
        "angles",
        "shrinks",
        "shears",
        "deformation",
        "distortion",
        "barrdistortion",
        "pincdistortion",
        "sharpening",
        "brightening",
    },
    "deformation": {"alpah", "sigmoid", "sigmoids"},
    "distortion": {"gaussian_filter_rsigma", "gaussian_filter_sigma", "distortions"},
    "barrdistortion": {"radius", "amount", "centers"},
    "pincdistortion": {"radius", "amount", "centers"},
    "brightening": {"alpha", "beta"},
    "sharpening": {"k"},
}


@dataclass
class ImportedRecipe:
    """The converted recipe: `[[ops]]` entries with their comments, and what could not be carried over."""

    seed: int
    splits: list[str]
    ops: list[tuple[dict[str, Any], list[str]]] = field(default_factory=list)  # (entry, comment lines)
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_toml(self, source: str) -> str:
        lines = [f"# converted by `defectkit import-augment` from {source}"]
        lines += [f"# {n}" for n in self.notes]
        if self.warnings:
            lines.append("# not converted / different from the original:")
            lines += [f"#   - {w}" for w in self.warnings]
        lines += [f"seed = {self.seed}", f"splits = {_toml(self.splits)}"]
        for entry, comments in self.ops:
            lines.append("")
            lines += [f"# {c}" for c in comments]
            lines.append("[[ops]]")
            lines += [f"{k} = {_toml(v)}" for k, v in entry.items()]
        return "\n".join(lines) + "\n"


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")


class _Config:
    """The original's `ConfigParser.get(section, key, dvalue)` with literals instead of eval."""

    def __init__(self, parser: configparser.ConfigParser, warnings: list[str]):
        self.parser = parser
        self.warnings = warnings

    def has(self, section: str, key: str) -> bool:
        return self.parser.has_option(section, key)

    def get(self, section: str, key: str, default: Any) -> Any:
        if not self.parser.has_option(section, key):
            return default
        text = self.parser.get(section, key, raw=True).strip()
        try:
            return ast.literal_eval(text)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            self.warnings.append(
                f"[{section}] {key} = {text} is not a Python literal; the original falls back to {default!r}, so do we"
            )
            return default


def _numbers(value: Any) -> list[float] | None:
    if isinstance(value, (list, tuple)) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value
    ):
        return [float(v) for v in value]
    return None


def _g(v: float) -> str:
    return f"{v:g}"


def original_distortion_std(size: float, rsigma: float, side: int, *, seed: int = 0) -> float:
    """Displacement std (px) of the original's `distort_one` on a side×side image (re-implemented, seeded).

    The original smooths N(0, 1) noise with the x and y derivatives of a Gaussian (sigma `rsigma`) and
    scales each component so that its maximum is `size`·side pixels.
    """
    from scipy.ndimage import gaussian_filter

    t = np.random.RandomState(seed).normal(size=(side, side))
    dx = gaussian_filter(t, rsigma, order=(0, 1))
    dy = gaussian_filter(t, rsigma, order=(1, 0))
    dx *= int(side * size) / dx.max()
    dy *= int(side * size) / dy.max()
    return float(np.sqrt((dx.var() + dy.var()) / 2))


def _our_std(maps: tuple[np.ndarray, np.ndarray], shape: tuple[int, int]) -> float:
    h, w = shape
    mx, my = maps
    dx = mx - np.arange(w, dtype=np.float32)[None, :]
    dy = my - np.arange(h, dtype=np.float32)[:, None]
    return float(np.sqrt((dx.var() + dy.var()) / 2))


def _original_radial_std(shape: tuple[int, int], radius: float, amount: float, center: tuple[float, float]) -> float:
    """Displacement std of the original's barrel / pincushion map (sin^amount inside a disk of radius·W)."""
    h, w = shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    cx, cy = w * center[0], h * center[1]
    r = w * radius
    ux, uy = xs - cx, ys - cy
    d = np.sqrt(ux * ux + uy * uy)
    inside = (d < r) & (d > 0)
    factor = np.ones_like(d)
    factor[inside] = np.sin(np.pi * d[inside] / r / 2) ** amount
    dx, dy = (factor - 1) * ux, (factor - 1) * uy
    return float(np.sqrt((dx.var() + dy.var()) / 2))


def convert_generator_config(text: str, source: str = "generator.config") -> ImportedRecipe:
    """Convert the text of an original generator.config; InputError when it is not a readable INI file."""
    parser = configparser.ConfigParser()  # the original's parser: keys lower-cased, ';' and '#' comment lines
    try:
        parser.read_string(text, source=source)
    except configparser.Error as e:
        raise InputError(f"not a readable INI file: {e}".replace("\n", " "), source) from None
    warnings: list[str] = []
    cfg = _Config(parser, warnings)
    for section in parser.sections():
        known = KNOWN.get(section)
        if known is None:
            warnings.append(f"section [{section}] is not read by the original augmentor; ignored")
            continue
        for key in parser.options(section):
            if key not in known and not (section == "deformation" and key == "alpha"):
                warnings.append(f"[{section}] {key} is not read by the original augmentor; ignored")
    if not parser.has_section("augmentor"):
        warnings.append("no [augmentor] section: the original's defaults apply (hflip, vflip, rotation, shrink 0.8)")

    width = cfg.get("dataset", "image_width", None)
    height = cfg.get("dataset", "image_height", None)
    if not (isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0):
        width = cfg.get("model", "image_width", 512) if parser.has_section("model") else 512
        height = cfg.get("model", "image_height", 512) if parser.has_section("model") else 512
        if not (isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0):
            width = height = 512
        warnings.append(f"no valid [dataset] image_width / image_height; strengths computed at {width}×{height}")
    shape = (height, width)

    no_aug = cfg.get("dataset", "no_augmentation", "test")
    splits = [s for s in SPLITS if s != no_aug]
    if no_aug not in SPLITS:
        warnings.append(f"[dataset] no_augmentation = {no_aug!r} is not a split name; every split is augmented")
    result = ImportedRecipe(ORIGINAL_SEED, splits)
    result.notes += [
        f"the original resizes every image and mask to {width}×{height} before augmenting; defectkit keeps each "
        "image's own size, and the strengths below are matched at that size",
        f"the original also augments every split but [dataset] no_augmentation = {no_aug!r}: splits = {splits}",
    ]
    if splits and "valid" in splits:
        result.notes.append("augmenting 'valid' copies variants of its images into it, as the original did")

    def add(entry: dict[str, Any], *comments: str) -> None:
        result.ops.append((entry, list(comments)))

    hflip = cfg.get("augmentor", "hflip", True)
    vflip = cfg.get("augmentor", "vflip", True)
    if hflip:
        add({"op": "hflip"}, "[augmentor] hflip = True (files hfliped_*)")
    if vflip:
        add({"op": "vflip"}, "[augmentor] vflip = True (files vfliped_*)")

    if cfg.get("augmentor", "rotation", True):
        angles = _numbers(cfg.get("augmentor", "angles", [90, 180, 270]))
        if angles is None:
            warnings.append("[augmentor] angles is not a list of numbers; rotation not converted")
        elif angles:
            add(
                {"op": "rotate", "angles": angles},
                "[augmentor] rotation = True, angles: counter-clockwise about the centre as in the original",
                "(the original fills the corners with the colour of pixel (2, 2); here quarter turns are exact and "
                "other angles reflect the border)",
            )

    shrinks = cfg.get("augmentor", "shrinks", [0.8])
    if isinstance(shrinks, list) and shrinks:  # the original needs a list
        ratios = _numbers(shrinks)
        good = [r for r in ratios or [] if 0 < r <= 1]
        if ratios is None or len(good) != len(shrinks):
            warnings.append(f"[augmentor] shrinks {shrinks} outside 0 < ratio <= 1 dropped")
        if good:
            add(
                {"op": "shrink", "ratios": good},
                "[augmentor] shrinks (files shrinked_*): the original pastes a nearest-neighbour resize on a flat "
                "colour; here bilinear, reflected image margin, background mask margin",
            )

    shears = cfg.get("augmentor", "shears", [])
    if isinstance(shears, list) and shears:
        factors = _numbers(shears)
        good = [f for f in factors or [] if -2 <= f <= 2]
        if factors is None or len(good) != len(shears):
            warnings.append(f"[augmentor] shears {shears} outside -2..2 dropped")
        if good:
            add(
                {"op": "shear", "factors": good},
                "[augmentor] shears (files sheared_*)",
            )
            warnings.append(
                "shear direction: the original shears vertically (y' = y + s·(x - W/2)); our shear is horizontal "
                "(x' = x + s·(y - cy)), same factors"
            )
            if hflip or vflip:
                warnings.append(
                    "the original also writes flipped copies of every shear (hflipped_/vflipped_/hvflipped_sheared_*);"
                    " a flip of a shear is no single op here: not converted"
                )

    if cfg.get("augmentor", "deformation", False):
        if cfg.has("deformation", "alpha") and not cfg.has("deformation", "alpah"):
            warnings.append(
                "[deformation] alpha is ignored by the original, which reads 'alpah' (sic): it used alpha 1300"
            )
        alpha = cfg.get("deformation", "alpah", 1300)
        sigmas = _numbers(cfg.get("deformation", "sigmoids", None) or [cfg.get("deformation", "sigmoid", 8)])
        if not isinstance(alpha, (int, float)) or isinstance(alpha, bool) or not alpha > 0 or not sigmas:
            warnings.append(f"[deformation] alpah {alpha!r} / sigmoid {sigmas!r} are not positive numbers; skipped")
        else:
            for sigma in sigmas:
                if not 0.5 <= sigma <= 200:
                    warnings.append(f"[deformation] sigmoid {_g(sigma)} outside 0.5..200; skipped")
                    continue
                ours = round(equivalent_alpha(alpha, sigma, shape), 1)
                orig_std = original_displacement_std(alpha, sigma, shape)
                add(
                    {"op": "elastic", "alpha": ours, "sigma": float(sigma), "copies": 1},
                    f"[deformation] original alpha {_g(alpha)}, sigma {_g(sigma)} -> alpha {_g(ours)}: same "
                    f"displacement std ({orig_std:.1f} px at {width}×{height}; the original's field is smoothed over "
                    "H×W×3 with zero padding, ~10× weaker than Simard's at equal numbers)",
                    f"(our alpha {_g(alpha)} would move pixels by {displacement_std(alpha, sigma, shape):.1f} px)",
                )
            warnings.append(
                "deformation: the original draws one field (seed 137) reused for every image and a second, different "
                "field for the mask, so its masks do not follow its images; here image and mask move together and "
                "every image gets its own field"
            )

    if cfg.get("augmentor", "distortion", False):
        rsigma = cfg.get("distortion", "gaussian_filter_rsigma", 40)
        sizes = _numbers(cfg.get("distortion", "distortions", [0.02]))
        side = max(width, height)
        if not isinstance(rsigma, (int, float)) or not rsigma > 0 or sizes is None:
            warnings.append("[distortion] gaussian_filter_rsigma / distortions are not positive numbers; skipped")
        else:
            grid = int(min(64, max(1, round(side / (math.pi * rsigma)))))
            unit = _our_std(distort_maps(shape, strength=1.0, grid=grid, rng=np.random.default_rng(0)), shape)
            for size in sizes:
                target = original_distortion_std(size, rsigma, side)
                strength = round(target / unit, 4)
                if not 0 < strength <= 1:
                    warnings.append(f"[distortion] distortion {_g(size)} needs strength {strength:g} > 1; skipped")
                    continue
                add(
                    {"op": "distort", "strength": strength, "grid": grid, "copies": 1},
                    f"[distortion] distortion {_g(size)}, gaussian_filter_rsigma {_g(rsigma)} (max shift "
                    f"{int(side * size)} px) -> grid {grid}, strength {strength:g}: approximate, same displacement "
                    f"std ({target:.1f} px); the original's field is a smoothed gradient, ours a bicubic grid",
                )
            warnings.append(
                "distortion: the original draws an unseeded field per call and a different one for the mask; "
                "here image and mask move together, seeded"
            )
            if cfg.has("distortion", "gaussian_filter_sigma"):
                warnings.append("[distortion] gaussian_filter_sigma is computed but never used by the original")

    for section, default_amount in (("barrdistortion", 0.5), ("pincdistortion", -0.5)):
        if not cfg.get("augmentor", section, False):
            continue
        radius = cfg.get(section, "radius", 0.5)
        amount = cfg.get(section, "amount", default_amount)
        centers = cfg.get(section, "centers", [(0.5, 0.5)])
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (radius, amount)) or not (
            isinstance(centers, (list, tuple))
        ):
            warnings.append(f"[{section}] radius / amount / centers are not numbers and a list; skipped")
            continue
        for center in centers:
            if _numbers(center) is None or len(center) != 2 or tuple(float(c) for c in center) != (0.5, 0.5):
                warnings.append(
                    f"[{section}] centre {center!r}: ours distorts about the image centre only; not converted"
                )
                continue
            op = "barrel" if amount > 0 else "pincushion"
            target = _original_radial_std(shape, float(radius), float(amount), (0.5, 0.5))
            unit = _our_std(radial_maps(shape, 1.0, 1.0), shape)
            ours = round(target / unit, 4)
            if op == "pincushion" and pincushion_folds(ours, 1.0):
                ours = round(0.33, 4)
                warnings.append(f"[{section}] the matched pincushion amount folds; clamped to {ours}")
            if not 0 < ours <= 1:
                warnings.append(f"[{section}] amount {_g(amount)} has no {op} equivalent within 0..1; skipped")
                continue
            add(
                {"op": op, "amount": ours, "radius": 1.0},
                f"[{section}] radius {_g(radius)}, amount {_g(amount)}, centre (0.5, 0.5) -> {op} amount {ours:g}: "
                f"approximate, same displacement std ({target:.1f} px); the original bends a disk of radius "
                f"{_g(radius)}·W only, ours the whole image",
            )

    if cfg.get("augmentor", "sharpening", False):
        warnings.append("[augmentor] sharpening: no sharpen op here; not converted")
    if cfg.get("augmentor", "brightening", False):
        b_alpha = cfg.get("brightening", "alpha", 1.2)
        b_beta = cfg.get("brightening", "beta", 10)
        if _numbers([b_alpha, b_beta]) is None or not (0 <= b_alpha <= 10 and -255 <= b_beta <= 255):
            warnings.append("[brightening] alpha / beta out of range; skipped")
        else:
            add(
                {"op": "brightness", "alpha": float(b_alpha), "beta": float(b_beta)},
                "[brightening] clip(alpha·image + beta) (the original also brightens its masks; here masks stay)",
            )
            if cfg.get("augmentor", "deformation", False):
                warnings.append(
                    "the FlexUNet ImageMaskAugmentor stores [brightening] alpha and the deformation alpha in one "
                    "attribute, so there deformation ran with the brightening alpha; converted as written"
                )

    if not result.ops:
        raise InputError(
            [Problem(source, "the original applies no op with this config; nothing to convert")]
            + [Problem(source, w) for w in warnings]
        )
    result.warnings = warnings
    return result


def import_generator_config(config: Path, out: Path, *, overwrite: bool = False) -> ImportedRecipe:
    """Read an original generator.config and write the recipe TOML at `out` (atomically); returns the conversion."""
    config, out = Path(config), Path(out)
    try:
        text = config.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError("config file not found", str(config)) from None
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read config: {e}", str(config)) from None
    if out.exists() and not overwrite:
        raise InputError("already exists; choose another path or pass --overwrite", str(out))
    if out.suffix.lower() != ".toml":
        raise InputError("the recipe is written as TOML; give a path ending in .toml", str(out))
    result = convert_generator_config(text, str(config))
    document = result.to_toml(config.name)
    parse_recipe(tomllib.loads(document), str(out))  # what we write always loads
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, document)
    return result
