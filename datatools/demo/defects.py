"""Synthetic surface defects with pixel-exact ground truth.

Every defect is a pure function `fn(image, rng) -> (new_image, mask)`:

- `image` is H×W or H×W×3 uint8 and is never modified; `new_image` has the same shape and dtype;
- `mask` is an H×W bool array, True exactly where the defect was drawn;
- `rng` is a `numpy.random.Generator`, the only source of randomness (same rng state → same output).

How the ground truth is made exact: each defect is first drawn as a *coverage* map a ∈ [0, 1] (cv2
primitives on a 4× supersampled canvas, area-downsampled, so edges are anti-aliased like a photograph).
The mask is `a >= 0.5` — the pixels at least half covered by the defect — and the image is blended
towards the defect's appearance with weight `a · strength`. Pixels outside the mask therefore change
by less than half of the defect's contrast (its soft fringe), pixels inside by at least half of it.

Coordinates follow OpenCV: x = column, y = row, origin at the top-left pixel's centre.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType

import cv2
import numpy as np

DefectFn = Callable[[np.ndarray, np.random.Generator], tuple[np.ndarray, np.ndarray]]

SUPERSAMPLE = 4
COVERAGE_THRESHOLD = 0.5


# --- drawing helpers ---------------------------------------------------------------------------------
def _coverage(shape: tuple[int, int], draw: Callable[[np.ndarray, int], None]) -> np.ndarray:
    """Run `draw(canvas, ss)` on a supersampled uint8 canvas (values 255 = covered) → float32 H×W in [0, 1]."""
    h, w = shape
    ss = SUPERSAMPLE
    canvas = np.zeros((h * ss, w * ss), np.uint8)
    draw(canvas, ss)
    small = cv2.resize(canvas, (w, h), interpolation=cv2.INTER_AREA)
    return small.astype(np.float32) / 255.0


def _ss_points(points: np.ndarray, ss: int) -> np.ndarray:
    """Pixel-centre coordinates → supersampled canvas integer coordinates."""
    return np.rint((np.asarray(points, np.float64) + 0.5) * ss - 0.5).astype(np.int32)


def _blend(image: np.ndarray, weight: np.ndarray, target: np.ndarray) -> np.ndarray:
    """image·(1−weight) + target·weight, with `target` float of the image's shape."""
    img = image.astype(np.float32)
    wgt = weight[:, :, None] if img.ndim == 3 else weight
    out = img * (1.0 - wgt) + target * wgt
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _darker(image: np.ndarray, factor: float) -> np.ndarray:
    return image.astype(np.float32) * factor


def _point_inside(rng: np.random.Generator, shape: tuple[int, int], margin: float) -> np.ndarray:
    h, w = shape
    return np.array([rng.uniform(margin, w - 1 - margin), rng.uniform(margin, h - 1 - margin)])


def _bezier(p0: np.ndarray, p1: np.ndarray, p2: np.ndarray, n: int = 48) -> np.ndarray:
    t = np.linspace(0.0, 1.0, n)[:, None]
    return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2


def _finish(image: np.ndarray, coverage: np.ndarray, strength: float, target: np.ndarray) -> tuple:
    mask = coverage >= COVERAGE_THRESHOLD
    return _blend(image, coverage * strength, target), mask


# --- the defects ---------------------------------------------------------------------------------------
def scratch(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A thin dark curved stroke (a quadratic Bézier curve 20–55 % of the image long, 1.5–2.5 px wide)."""
    shape = image.shape[:2]
    side = min(shape)
    p0 = _point_inside(rng, shape, 0.08 * side)
    angle = rng.uniform(0, 2 * np.pi)
    length = rng.uniform(0.20, 0.55) * side
    p2 = np.clip(p0 + length * np.array([np.cos(angle), np.sin(angle)]), 2, np.array(shape[::-1]) - 3)
    normal = np.array([-np.sin(angle), np.cos(angle)])
    p1 = (p0 + p2) / 2 + normal * rng.uniform(-0.25, 0.25) * length
    curve = _bezier(p0, p1, p2)
    width = rng.uniform(1.5, 2.5)

    def draw(canvas: np.ndarray, ss: int) -> None:
        cv2.polylines(canvas, [_ss_points(curve, ss)], False, 255, max(1, round(width * ss)), cv2.LINE_8)

    cov = _coverage(shape, draw)
    return _finish(image, cov, rng.uniform(0.60, 0.80), _darker(image, 0.2))


def crack(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A branching dark line: a jittered random walk with 1–3 thinner side branches."""
    shape = image.shape[:2]
    h, w = shape
    side = min(shape)
    lo, hi = np.array([2.0, 2.0]), np.array([w - 3.0, h - 3.0])

    def walk(start: np.ndarray, heading: float, length: float) -> np.ndarray:
        step = max(2.0, side / 40)
        n = max(3, int(length / step))
        turns = np.cumsum(rng.normal(0.0, 0.35, size=n))
        steps = step * np.stack([np.cos(heading + turns), np.sin(heading + turns)], axis=1)
        return np.clip(start + np.vstack([[0.0, 0.0], np.cumsum(steps, axis=0)]), lo, hi)

    start = _point_inside(rng, shape, 0.15 * side)
    heading = rng.uniform(0, 2 * np.pi)
    main_length = rng.uniform(0.30, 0.60) * side
    main = walk(start, heading, main_length)
    strokes = [(main, rng.uniform(2.0, 3.2))]
    for _ in range(int(rng.integers(1, 4))):
        at = main[int(rng.integers(1, len(main) - 1))]
        turn = rng.choice([-1.0, 1.0]) * rng.uniform(0.5, 1.2)
        branch = walk(at, heading + turn, rng.uniform(0.25, 0.55) * main_length)
        strokes.append((branch, rng.uniform(1.5, 2.2)))

    def draw(canvas: np.ndarray, ss: int) -> None:
        for pts, width in strokes:
            cv2.polylines(canvas, [_ss_points(pts, ss)], False, 255, max(1, round(width * ss)), cv2.LINE_8)

    cov = _coverage(shape, draw)
    return _finish(image, cov, rng.uniform(0.75, 0.92), _darker(image, 0.12))


STAIN_COLORS: tuple[tuple[float, float, float], ...] = (
    (0.75, 0.45, 0.22),  # rust
    (0.42, 0.40, 0.38),  # oil
    (0.40, 0.50, 0.95),  # blue ink
    (0.50, 0.80, 0.35),  # green
    (1.25, 1.10, 0.45),  # yellow glue
)


def blob_polygon(
    rng: np.random.Generator, center: np.ndarray, radius: float, n: int = 28, roughness: float = 0.25
) -> np.ndarray:
    """An irregular star-shaped closed polygon (n×2 float, x/y) around `center` with mean `radius`."""
    theta = np.linspace(0, 2 * np.pi, n, endpoint=False)
    r = np.ones(n)
    for k in (2, 3, 5):
        r += roughness / k * rng.uniform(0.5, 1.0) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    r *= radius
    return center + np.stack([r * np.cos(theta), r * np.sin(theta)], axis=1)


def stain(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A soft-edged colour blob (rust, oil, ink, ...): irregular shape, Gaussian-feathered edge."""
    shape = image.shape[:2]
    side = min(shape)
    radius = rng.uniform(0.06, 0.15) * side
    center = _point_inside(rng, shape, radius * 1.3 + 2)
    poly = blob_polygon(rng, center, radius)
    sigma = float(np.clip(radius * rng.uniform(0.15, 0.30), 1.0, 4.0))  # soft edge, but a bounded fringe

    def draw(canvas: np.ndarray, ss: int) -> None:
        cv2.fillPoly(canvas, [_ss_points(poly, ss)], 255, cv2.LINE_8)

    cov = cv2.GaussianBlur(_coverage(shape, draw), (0, 0), sigma)
    cov = np.clip(cov / max(float(cov.max()), 1e-6), 0.0, 1.0)  # a small blob still reaches full strength
    tint = np.asarray(STAIN_COLORS[int(rng.integers(len(STAIN_COLORS)))], np.float32)
    if image.ndim == 2:  # on a grayscale surface a stain is a darker blob
        tint = np.float32(min(0.6, float(tint.mean())))
    target = image.astype(np.float32) * tint
    return _finish(image, cov, rng.uniform(0.75, 0.95), target)


def poke(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A hole / poke mark: a small dark elliptic pit surrounded by a bright raised rim."""
    shape = image.shape[:2]
    side = min(shape)
    r = rng.uniform(0.015, 0.035) * side + 1.5
    rim = rng.uniform(1.0, 1.8)
    center = _point_inside(rng, shape, r + rim + 3)
    axes = np.array([r, r * rng.uniform(0.7, 1.0)])
    angle = rng.uniform(0, 180)

    def ellipse(radii: np.ndarray) -> Callable[[np.ndarray, int], None]:
        def draw(canvas: np.ndarray, ss: int) -> None:
            c = tuple(int(v) for v in _ss_points(center, ss))
            ax = tuple(max(1, round(v * ss)) for v in radii)
            cv2.ellipse(canvas, c, ax, angle, 0, 360, 255, -1, cv2.LINE_8)

        return draw

    pit = _coverage(shape, ellipse(axes))
    outer = _coverage(shape, ellipse(axes + rim))
    ring = np.clip(outer - pit, 0.0, 1.0)
    img = image.astype(np.float32)
    bright = img * 0.4 + 255.0 * 0.6
    out = _blend(image, ring * rng.uniform(0.55, 0.75), bright)
    out = _blend(out, pit * rng.uniform(0.85, 0.95), _darker(image, 0.08))
    return out, outer >= COVERAGE_THRESHOLD


def cut(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A straight thin dark line (a knife cut), 25–60 % of the image long, 1.5–2.5 px wide."""
    shape = image.shape[:2]
    side = min(shape)
    p0 = _point_inside(rng, shape, 0.1 * side)
    angle = rng.uniform(0, 2 * np.pi)
    length = rng.uniform(0.25, 0.60) * side
    p1 = np.clip(p0 + length * np.array([np.cos(angle), np.sin(angle)]), 2, np.array(shape[::-1]) - 3)
    width = rng.uniform(1.5, 2.5)

    def draw(canvas: np.ndarray, ss: int) -> None:
        a, b = _ss_points(np.stack([p0, p1]), ss)
        cv2.line(canvas, tuple(int(v) for v in a), tuple(int(v) for v in b), 255, max(1, round(width * ss)))

    cov = _coverage(shape, draw)
    return _finish(image, cov, rng.uniform(0.80, 0.95), _darker(image, 0.1))


DEFECTS: Mapping[str, DefectFn] = MappingProxyType(
    {"crack": crack, "cut": cut, "poke": poke, "scratch": scratch, "stain": stain}
)


def get_defect(name: str) -> DefectFn:
    """The defect function called `name`; the error lists the valid names."""
    try:
        return DEFECTS[name]
    except KeyError:
        raise ValueError(f"unknown defect {name!r}; valid names: {', '.join(DEFECTS)}") from None


def apply_defect(name: str, image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Draw defect `name` on a copy of `image`; returns (new image, bool mask)."""
    return get_defect(name)(image, rng)
