"""`defectkit convert cvat`: labels, polygons and boxes against pycocotools, CVAT mask RLE, z_order, bad input.

Polygons and boxes follow pycocotools (CVAT's own mask export goes through datumaro, which rasterizes
with pycocotools), so pycocotools is the oracle; masks are checked against numpy slices.
"""

import json
from xml.sax.saxutils import quoteattr

import numpy as np
import pytest
from typer.testing import CliRunner

from datatools.files import read_image
from defectkit.cli import app
from tests.datatools.fakes import texture, write_png

mask_utils = pytest.importorskip("pycocotools.mask")

runner = CliRunner()
H, W = 36, 48
# labels in file order: scratch has its own colour, dent none (default palette colour 2), rust its own
LABELS = [("scratch", "#fa3253"), ("dent", None), ("rust", "#33ddff")]
COLORS = {0: (0, 0, 0), 1: (0xFA, 0x32, 0x53), 2: (255, 0, 0), 3: (0x33, 0xDD, 0xFF)}


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def rows_of(out):
    return {r["id"]: r for r in (json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines())}


def index_mask(out, row) -> np.ndarray:
    rgb = read_image(out / row["mask"])
    idx = np.full(rgb.shape[:2], 255, np.uint8)
    for k, c in COLORS.items():
        idx[(rgb == c).all(axis=2)] = k
    assert (idx != 255).all(), "mask holds a colour outside the palette"
    return idx


def labels_xml(labels=LABELS, tag="task") -> str:
    items = "".join(
        f"<label><name>{n}</name>{f'<color>{c}</color>' if c else ''}<type>any</type><attributes/></label>"
        for n, c in labels
    )
    return f"<meta><{tag}><id>1</id><name>t</name><labels>{items}</labels></{tag}></meta>"


def polygon(label, pts, z=0):
    text = ";".join(f"{x:.2f},{y:.2f}" for x, y in pts)
    return f'<polygon label="{label}" occluded="1" source="manual" points="{text}" z_order="{z}"></polygon>'


def box(label, xtl, ytl, xbr, ybr, z=0):
    return f'<box label="{label}" occluded="0" xtl="{xtl}" ytl="{ytl}" xbr="{xbr}" ybr="{ybr}" z_order="{z}"/>'


def cvat_rle(m: np.ndarray) -> str:
    flat = m.ravel()
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    runs = np.diff(np.concatenate([[0], change, [flat.size]])).tolist()
    if flat[0]:
        runs = [0, *runs]
    return ", ".join(str(r) for r in runs)


def mask_el(label, m, left, top, z=0):
    h, w = m.shape
    return (
        f'<mask label="{label}" source="manual" occluded="0" rle="{cvat_rle(m)}" left="{left}" top="{top}" '
        f'width="{w}" height="{h}" z_order="{z}"></mask>'
    )


def write_cvat(root, images: dict[str, list[str]], *, size=(H, W), labels=LABELS, tag="task", rng=None):
    rng = rng or np.random.default_rng(0)
    parts = ["<?xml version='1.0' encoding='utf-8'?>\n<annotations><version>1.1</version>", labels_xml(labels, tag)]
    for i, (name, shapes) in enumerate(images.items()):
        write_png(root / "images" / name, texture(rng, *size))
        parts.append(f'<image id="{i}" name={quoteattr(name)} width="{size[1]}" height="{size[0]}">')
        parts.extend(shapes)
        parts.append("</image>")
    parts.append("</annotations>")
    path = root / "annotations.xml"
    path.write_text("\n".join(parts))
    return path


def star(rng, cx, cy, r_out, k=6):
    ang = np.linspace(0, 2 * np.pi, 2 * k, endpoint=False) + rng.uniform(0, np.pi)
    radius = np.where(np.arange(2 * k) % 2 == 0, r_out, r_out * 0.45) * rng.uniform(0.8, 1.2, 2 * k)
    return np.round(np.stack([cx + radius * np.cos(ang), cy + radius * np.sin(ang)], 1), 2)


def coco_poly(pts) -> np.ndarray:
    return mask_utils.decode(mask_utils.frPyObjects([np.asarray(pts).ravel().tolist()], H, W))[:, :, 0].astype(bool)


def coco_box(xtl, ytl, xbr, ybr) -> np.ndarray:
    bb = np.array([[xtl, ytl, xbr - xtl, ybr - ytl]], float)
    return mask_utils.decode(mask_utils.frPyObjects(bb, H, W))[:, :, 0].astype(bool)


def test_convert_matches_pycocotools_and_z_order(tmp_path):
    rng = np.random.default_rng(1)
    s1, s2, s3 = star(rng, 12, 12, 9), star(rng, -2.5, 30.3, 11), star(rng, 40, 10, 12)  # s2, s3 cross borders
    blob = np.zeros((9, 12), bool)
    blob[1:8, 2:11] = True
    blob[3:6, 5:8] = False  # a hole
    images = {
        "a.png": [
            polygon("rust", s1, z=2),  # drawn last: highest z_order although first in the file
            box("dent", 5.3, 4.6, 30.2, 22.8, z=0),
            mask_el("scratch", blob, 14, 10, z=1),
        ],
        "sub/b 1.png": [
            polygon("dent", s2),
            polygon("scratch", s3),  # same z_order: document order, later on top
            box("rust", 30.5, 20.5, 60, 50),  # crosses the right and bottom border
            mask_el("rust", blob, -4, 30),  # clipped at the left and bottom
            '<polyline label="dent" points="1,1;5,5" z_order="9"/>',
            '<points label="dent" points="3,3" z_order="9"/>',
            '<tag label="dent"/>',
        ],
        "good.png": [],
    }
    ann = write_cvat(tmp_path, images)
    out = tmp_path / "out"
    res = run("convert", "cvat", ann, tmp_path / "images", out, "--workers", "1")
    assert res.exit_code == 0, res.output
    info = json.loads((out / "dataset.json").read_text())
    assert [(c["name"], tuple(c["color"])) for c in info["classes"]] == [
        ("background", (0, 0, 0)),
        ("scratch", COLORS[1]),
        ("dent", COLORS[2]),
        ("rust", COLORS[3]),
    ]
    rows = rows_of(out)
    assert sorted(rows) == ["a", "good", "sub/b 1"]

    want_a = np.zeros((H, W), np.uint8)
    want_a[coco_box(5.3, 4.6, 30.2, 22.8)] = 2
    want_a[10:19, 14:26][blob] = 1
    want_a[coco_poly(s1)] = 3
    want_b = np.zeros((H, W), np.uint8)
    want_b[coco_poly(s2)] = 2
    want_b[coco_poly(s3)] = 1
    want_b[coco_box(30.5, 20.5, 60, 50)] = 3
    want_b[30:36, 0:8][blob[:6, 4:]] = 3
    for sid, want in (("a", want_a), ("sub/b 1", want_b), ("good", np.zeros((H, W), np.uint8))):
        got = index_mask(out, rows[sid])
        assert (got == want).all(), f"{sid}: {(got != want).sum()} pixels differ"
    assert len(np.unique(want_a)) == 4 and len(np.unique(want_b)) == 4
    warned = [w["reason"] for w in info["warnings"]]
    assert sum("has no area and was skipped" in w for w in warned) == 2


@pytest.mark.parametrize("tag", ["job", "project"])
def test_labels_from_job_or_project(tmp_path, tag):
    ann = write_cvat(tmp_path, {"x.png": [box("rust", 1, 1, 5, 5)]}, tag=tag)
    pal = tmp_path / "pal.json"
    pal.write_text(json.dumps({"dent": [1, 2, 3]}))
    res = run("convert", "cvat", ann, tmp_path / "images", tmp_path / "o", "--palette", pal)
    assert res.exit_code == 0, res.output
    info = json.loads((tmp_path / "o" / "dataset.json").read_text())
    assert [c["name"] for c in info["classes"]] == ["background", "scratch", "dent", "rust"]
    assert info["classes"][2]["color"] == [1, 2, 3]


def test_bad_input_lists_every_problem_and_writes_nothing(tmp_path):
    images = {
        "ok.png": [box("dent", 1, 1, 5, 5)],
        "label.png": [box("hole", 1, 1, 5, 5)],
        "points.png": [polygon("dent", [(1, 1), (2, 2)])],
        "rle.png": ['<mask label="dent" rle="3, 4" left="0" top="0" width="3" height="3"/>'],
    }
    ann = write_cvat(tmp_path, images)
    (tmp_path / "images" / "ok.png").rename(tmp_path / "images" / "gone.png")
    write_png(tmp_path / "images" / "small.png", np.zeros((5, 5, 3), np.uint8))
    text = ann.read_text().replace("</annotations>", '<image id="9" name="small.png" width="6" height="5"></image>\n')
    ann.write_text(text + "</annotations>")
    out = tmp_path / "out"
    res = run("convert", "cvat", ann, tmp_path / "images", out)
    assert res.exit_code == 1
    err = res.output
    assert "unknown label 'hole'" in err
    assert "at least 3 points" in err
    assert "rle runs cover 7 pixels" in err
    assert "ok.png: file is missing" in err
    assert "small.png" in err and "6x5" in err and "5x5" in err
    assert "5 problems found; nothing was written." in err
    assert not out.exists()
    bad = tmp_path / "bad.xml"
    bad.write_text("<annotations><image")
    res = run("convert", "cvat", bad, tmp_path / "images", out)
    assert res.exit_code == 1 and "invalid XML" in res.output


def test_skip_invalid(tmp_path):
    ann = write_cvat(tmp_path, {"ok.png": [box("dent", 1, 1, 5, 5)], "bad.png": [box("nope", 1, 1, 5, 5)]})
    out = tmp_path / "out"
    res = run("convert", "cvat", ann, tmp_path / "images", out, "--skip-invalid")
    assert res.exit_code == 0, res.output
    assert sorted(rows_of(out)) == ["ok"]
    assert len(json.loads((out / "dataset.json").read_text())["skipped"]) == 1
