"""Pixel-exact comparison of our Supervisely rasterizer with the real SDK's `Annotation.draw`.

The `supervisely` package pins its own numpy/opencv, so it lives in a separate venv (`make oracle` creates
`.oracle-venv`); `tests/datatools/oracle/sdk_draw.py` runs there in a subprocess and writes the SDK's masks.
Skipped when the venv is absent (CI). Behaviour found here is also pinned without the SDK in
`tests/datatools/sources/test_supervisely.py`.
"""

from __future__ import annotations

import base64
import json
import subprocess
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from datatools.files import read_image
from datatools.rasterize import rasterize
from datatools.sources.supervisely import parse_objects
from defectkit.cli import app
from tests.datatools.fakes import make_supervisely, sly_bitmap, sly_polygon, sly_rectangle

REPO = Path(__file__).resolve().parents[2]
ORACLE_PY = REPO / ".oracle-venv" / "bin" / "python"
SDK_DRAW = Path(__file__).resolve().parent / "oracle" / "sdk_draw.py"
CLASSES = [("scratch", "#ff0000"), ("dent", "#00ff00"), ("rust", "#0000ff"), ("crack", "#ffff00")]
SIZE = (40, 50)  # H, W

pytestmark = [
    pytest.mark.oracle,
    pytest.mark.skipif(not ORACLE_PY.exists(), reason="Supervisely SDK venv .oracle-venv absent (run `make oracle`)"),
]


def bitmap_rgba(title: str, mask: np.ndarray, origin) -> dict:
    """A bitmap object whose PNG is BGRA with the mask in alpha (and junk in the colour channels)."""
    bgra = np.zeros((*mask.shape, 4), np.uint8)
    bgra[..., :3] = 200
    bgra[..., 3] = np.where(mask, 255, 0)
    bgra[0, 0, 3] = 1 if mask[0, 0] else 0  # partial alpha still counts as inside
    ok, buf = cv2.imencode(".png", bgra)
    assert ok
    data = base64.b64encode(zlib.compress(buf.tobytes())).decode()
    return {"classTitle": title, "geometryType": "bitmap", "bitmap": {"data": data, "origin": list(origin)}}


def ring(cx: float, cy: float, r: float, n: int = 7) -> list[tuple[float, float]]:
    a = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return [(float(cx + r * np.cos(t)), float(cy + r * np.sin(t))) for t in a]


def disk(h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    return (yy - h / 2 + 0.5) ** 2 + (xx - w / 2 + 0.5) ** 2 <= (min(h, w) / 2) ** 2


CONCAVE = [(5, 5), (30, 5), (30, 30), (20, 30), (20, 12), (12, 12), (12, 35), (5, 35)]
SQUARE = [(4, 4), (40, 4), (40, 34), (4, 34)]

FIXED: dict[str, list[dict]] = {
    "concave": [sly_polygon("scratch", CONCAVE)],
    "star": [
        sly_polygon(
            "dent", [(25, 2), (29, 15), (45, 15), (32, 23), (37, 37), (25, 28), (13, 37), (18, 23), (5, 15), (21, 15)]
        )
    ],
    "bowtie": [sly_polygon("dent", [(5, 5), (40, 30), (40, 5), (5, 30)])],
    "hole one": [sly_polygon("scratch", SQUARE, [[(12, 10), (25, 10), (25, 22), (12, 22)]])],
    "holes several": [
        sly_polygon(
            "rust",
            SQUARE,
            [
                [(8, 8), (14, 8), (14, 14), (8, 14)],
                [(20, 8), (30, 8), (30, 18), (20, 18)],
                [(26, 14), (35, 14), (35, 24), (26, 24)],  # overlaps the previous hole
                [(4, 26), (12, 26), (12, 34), (4, 34)],  # shares two edges with the exterior
                [(36, 20), (46, 22), (44, 30)],  # pokes out of the exterior
                [(15.7, 24.2), (22.9, 24.5), (19.5, 31.8)],  # float hole
            ],
        )
    ],
    "hole concave": [sly_polygon("dent", CONCAVE, [[(7, 20), (10, 20), (10, 30), (7, 30)]])],
    "float positive": [sly_polygon("scratch", [(3.7, 2.2), (20.5, 4.9), (30.99, 25.01), (10.5, 30.5), (2.5, 18.4999)])],
    "float negative": [
        sly_polygon("dent", [(-3.5, -2.7), (15.2, -0.5), (20.7, 12.3), (-0.4, 18.9)]),
        sly_polygon("rust", [(30.2, -0.9), (49.6, 10.1), (40.5, 39.9), (55.5, 35.5)]),
    ],
    "float hole negative": [
        sly_polygon(
            "scratch",
            [(-5.5, -5.5), (30.5, -5.5), (30.5, 20.5), (-5.5, 20.5)],
            [[(-2.5, -2.5), (10.5, -2.5), (10.5, 8.7), (-2.5, 8.7)]],
        )
    ],
    "outside partly": [
        sly_polygon("scratch", [(35, 20), (70, 25), (60, 60), (30, 50)]),
        sly_polygon("dent", [(-20, -10), (10, 2), (3, 15)]),
    ],
    "outside entirely": [
        sly_polygon("scratch", [(60, 5), (80, 5), (70, 30)]),
        sly_polygon("dent", [(-30, -30), (-5, -30), (-10, -2)]),
        sly_polygon("rust", [(10, 45), (30, 45), (20, 60)]),
        sly_rectangle("crack", (55, 10), (70, 20)),
    ],
    "hole outside": [
        sly_polygon("rust", [(2, 2), (45, 2), (45, 36), (2, 36)], [[(30, -10), (70, -5), (60, 20), (35, 15)]])
    ],
    "degenerate": [
        sly_polygon("scratch", [(3, 3), (20, 15)]),
        sly_polygon("dent", [(25, 5), (40, 5), (45, 5)]),
        sly_polygon("rust", [(30, 30)]),
    ],
    "rect float": [
        sly_rectangle("scratch", (3.6, 4.2), (20.5, 15.5)),
        sly_rectangle("dent", (22.5, 20.5), (30.49, 33.51)),
    ],
    "rect inverted": [sly_rectangle("rust", (30, 20), (5, 3)), sly_rectangle("dent", (40, 5), (45.7, 1.2))],
    "rect clipped": [
        sly_rectangle("scratch", (-5.5, -3.2), (10, 8)),
        sly_rectangle("dent", (40, 30), (60, 55)),
        sly_rectangle("crack", (-10, 15), (100, 17)),
    ],
    "rect negative float": [
        sly_rectangle("rust", (-0.5, -0.4), (3.5, 2.6)),
        sly_rectangle("dent", (-2.6, 10), (4, 12)),
    ],
    "bitmap gray": [sly_bitmap("scratch", disk(9, 13), (4, 6))],
    "bitmap alpha": [bitmap_rgba("dent", disk(11, 8), (20, 12))],
    "bitmap bottom right out": [sly_bitmap("rust", disk(12, 12), (44, 33)), bitmap_rgba("dent", disk(8, 8), (45, 2))],
    "bitmap top left out": [sly_bitmap("rust", disk(12, 12), (-4, -5)), bitmap_rgba("dent", disk(8, 8), (10, -3))],
    "bitmap float origin": [
        sly_bitmap("scratch", disk(6, 7), (2.7, -1.5)),
        bitmap_rgba("dent", disk(5, 5), (-0.5, 30.2)),
    ],
    "crop splits": [
        sly_polygon("rust", [(5, 20), (15, 20), (15, 45), (35, 45), (35, 20), (45, 20), (45, 55), (5, 55)])
    ],
    "crop bowtie": [sly_polygon("scratch", [(-10, 5), (30, 30), (30, 5), (-10, 30)])],
    "crop half pixel": [
        sly_polygon("dent", [(-3, 1), (8, 12), (-3, 20)]),
        sly_polygon("rust", [(45, 3), (52, 10), (45, 17)]),
    ],
    "overlap": [
        sly_rectangle("scratch", (2, 2), (30, 30)),
        sly_polygon("dent", [(10, 10), (45, 12), (20, 38)]),
        sly_bitmap("rust", disk(10, 10), (15, 15)),
        sly_polygon("scratch", [(25, 0), (35, 0), (35, 39), (25, 39)], [[(27, 5), (33, 5), (33, 15)]]),
        sly_rectangle("crack", (0, 20), (8, 25)),
    ],
    "empty": [],
}


def random_objects(rng: np.random.Generator, n: int, h: int, w: int) -> list[dict]:
    titles = [t for t, _ in CLASSES]
    objs = []
    for _ in range(n):
        title = titles[int(rng.integers(len(titles)))]
        kind = rng.choice(["polygon"] * 6 + ["rectangle", "bitmap"])
        if kind == "polygon":
            k = int(rng.integers(3, 14))
            cx, cy = rng.uniform(-10, w + 10), rng.uniform(-10, h + 10)
            radius = rng.uniform(2, max(h, w) * 0.6, k)
            ang = np.sort(rng.uniform(0, 2 * np.pi, k)) if rng.random() < 0.7 else rng.uniform(0, 2 * np.pi, k)
            ext = np.stack([cx + radius * np.cos(ang), cy + radius * np.sin(ang)], 1)
            if rng.random() < 0.5:
                ext = np.round(ext, int(rng.integers(0, 3)))
            holes = []
            for _ in range(int(rng.integers(0, 4)) if rng.random() < 0.4 else 0):
                hc = ext.mean(0) + rng.uniform(-8, 8, 2)
                hr = rng.uniform(1, 8)
                hk = int(rng.integers(3, 8))
                ha = np.sort(rng.uniform(0, 2 * np.pi, hk))
                holes.append(np.stack([hc[0] + hr * np.cos(ha), hc[1] + hr * np.sin(ha)], 1).tolist())
            objs.append(sly_polygon(title, ext.tolist(), holes))
        elif kind == "rectangle":
            p0 = rng.uniform([-10, -10], [w + 5, h + 5])
            p1 = p0 + rng.uniform(-25, 25, 2)
            objs.append(sly_rectangle(title, p0.tolist(), p1.tolist()))
        else:
            bh, bw = (int(v) for v in rng.integers(2, 15, 2))
            m = rng.random((bh, bw)) < 0.6
            m[bh // 2, bw // 2] = True
            origin = [int(rng.integers(-bw + 1, w)), int(rng.integers(-bh + 1, h))]
            objs.append(bitmap_rgba(title, m, origin) if rng.random() < 0.5 else sly_bitmap(title, m, origin))
    return objs


def build_project(root: Path, *, n_random: int = 80, seed: int = 7) -> Path:
    rng = np.random.default_rng(seed)
    random_ds = {f"r{i:03d}": random_objects(rng, 5, *SIZE) for i in range(n_random)}
    project = make_supervisely(root, {"fixed cases": FIXED, "random": random_ds}, size=SIZE, classes=CLASSES)
    meta = json.loads((project / "meta.json").read_text())
    for c in meta["classes"]:
        c["shape"] = "any"  # mixed geometries per class; the SDK then builds each object from its geometryType
    (project / "meta.json").write_text(json.dumps(meta))
    for ann_path in project.rglob("ann/*.json"):  # real exports give every object a tags list; the SDK needs it
        ann = json.loads(ann_path.read_text())
        for obj in ann["objects"]:
            obj.setdefault("tags", [])
        ann_path.write_text(json.dumps(ann))
    return project


def run_sdk(project: Path, out: Path) -> dict[str, dict]:
    proc = subprocess.run(
        [str(ORACLE_PY), str(SDK_DRAW), str(project), str(out)], capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((out / "results.json").read_text())


def annotation(project: Path, sample_id: str) -> dict:
    ds, stem = sample_id.rsplit("/", 1)
    return json.loads((project / ds / "ann" / f"{stem}.png.json").read_text())


def ours(project: Path, sample_id: str) -> np.ndarray:
    ann = annotation(project, sample_id)
    class_index = {t: k for k, (t, _) in enumerate(CLASSES, start=1)}
    shapes = parse_objects(ann, class_index, f"{sample_id}.json")
    return rasterize(shapes, (ann["size"]["height"], ann["size"]["width"]))


def test_rasterize_matches_sdk_annotation_draw(tmp_path):
    project = build_project(tmp_path / "proj")
    results = run_sdk(project, tmp_path / "sdk")
    assert len(results) == len(FIXED) + 80
    errors = {k: r["error"] for k, r in results.items() if r["error"]}
    assert not errors, "SDK failed:\n" + "\n".join(f"{k}: {v}" for k, v in sorted(errors.items()))
    differing = {}
    n_objects = 0
    for sample_id, rec in results.items():
        expected = np.load(tmp_path / "sdk" / f"{rec['n']}.index.npy")
        got = ours(project, sample_id)
        n_objects += len(annotation(project, sample_id)["objects"])
        if not np.array_equal(got, expected):
            ys, xs = np.nonzero(got != expected)
            differing[sample_id] = (
                f"{len(ys)} px differ, e.g. (x={xs[0]}, y={ys[0]}): ours {got[ys[0], xs[0]]} "
                f"sdk {expected[ys[0], xs[0]]}"
            )
    assert not differing, "SDK and ours differ:\n" + "\n".join(f"{k}: {v}" for k, v in sorted(differing.items()))
    assert n_objects >= 400
    # Every fixed case draws something except the empty and all-outside ones: the comparison is not vacuous.
    drawn = {k for k, r in results.items() if np.load(tmp_path / "sdk" / f"{r['n']}.index.npy").any()}
    assert {f"fixed cases/{k}" for k in FIXED} - drawn == {"fixed cases/empty", "fixed cases/outside entirely"}


def test_cli_masks_match_sdk_colours(tmp_path):
    """`defectkit convert supervisely` writes the same RGB as `ann.draw(rgb)` with meta.json colours."""
    project = build_project(tmp_path / "proj", n_random=8, seed=11)
    results = run_sdk(project, tmp_path / "sdk")
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["convert", "supervisely", str(project), str(out), "--workers", "1"])
    assert res.exit_code == 0, res.output
    rows = {json.loads(line)["id"]: json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()}
    assert set(rows) == set(results)
    for sample_id, rec in results.items():
        expected = np.load(tmp_path / "sdk" / f"{rec['n']}.rgb.npy")
        np.testing.assert_array_equal(read_image(out / rows[sample_id]["mask"]), expected, err_msg=sample_id)
