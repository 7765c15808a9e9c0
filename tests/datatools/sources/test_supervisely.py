"""`defectkit convert supervisely`: classes, every geometry's pixels, ids, warnings, workers, errors.

Expected masks are written by hand (numpy slices) or, for the border/float cases, copied from the real
Supervisely SDK's output (tests/datatools/test_oracle_supervisely.py checks the rasterizer against it).
"""

import json

import cv2
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from datatools.files import read_image
from datatools.rasterize import draw_polygon, polygon_points, rasterize, rectangle_corners
from datatools.sources.supervisely import parse_objects
from defectkit.cli import app
from tests.datatools.fakes import make_supervisely, sly_bitmap, sly_polygon, sly_rectangle

runner = CliRunner()
CLASSES = [("scratch", "#ff0000"), ("dent", "#00ff00"), ("rust", "#0000ff")]  # not alphabetical on purpose
COLORS = {0: (0, 0, 0), 1: (255, 0, 0), 2: (0, 255, 0), 3: (0, 0, 255)}
H, W = 24, 30

U_SHAPE = [(2, 2), (20, 2), (20, 16), (14, 16), (14, 8), (8, 8), (8, 16), (2, 16)]  # notch x 8..14, y 8..16
U_HOLE = [(3, 10), (6, 10), (6, 14), (3, 14)]
BLOB = np.array([[0, 1, 1, 0], [1, 1, 1, 1], [0, 1, 0, 0]], bool)


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


def geometry_project(root):
    return make_supervisely(
        root,
        {
            "ds 1": {
                "car 12": [sly_polygon("scratch", U_SHAPE, [U_HOLE])],
                "rect": [sly_rectangle("dent", (10, 4), (3, 8))],  # inverted corner order
                "floats": [
                    sly_polygon("rust", [(2.9, 3.9), (9.99, 3.1), (9.5, 8.7), (2.2, 8.2)]),
                    sly_rectangle("dent", (12.8, 1.5), (15.2, 3.99)),
                ],
                "empty": [],
            },
            "ds2": {
                "bitmap": [sly_bitmap("rust", BLOB, (5, 7))],
                "overlap": [
                    sly_rectangle("scratch", (0, 0), (9, 9)),
                    sly_polygon("dent", [(5, 5), (14, 5), (14, 14), (5, 14)]),
                    sly_bitmap("rust", np.ones((2, 2), bool), (8, 8)),
                ],
                "clip": [
                    sly_rectangle("scratch", (-5, 20), (40, 30)),
                    sly_bitmap("dent", np.ones((4, 4), bool), (28, -2)),
                ],
            },
        },
        size=(H, W),
        classes=CLASSES,
        ext=".jpg",
    )


def expected_masks() -> dict[str, np.ndarray]:
    e = {k: np.zeros((H, W), np.uint8) for k in ("car 12", "rect", "floats", "empty", "bitmap", "overlap", "clip")}
    m = e["car 12"]
    m[2:17, 2:21] = 1  # exterior boundary included
    m[9:17, 9:14] = 0  # concave notch, its edges stay inside the polygon
    m[10:15, 3:7] = 0  # hole and its own boundary removed
    e["rect"][4:9, 3:11] = 2  # both corners included
    e["floats"][3:9, 2:10] = 3  # floored corners (2, 3) .. (9, 8)
    e["floats"][1:4, 12:16] = 2
    e["bitmap"][7:10, 5:9][BLOB] = 3
    m = e["overlap"]
    m[0:10, 0:10] = 1
    m[5:15, 5:15] = 2
    m[8:10, 8:10] = 3
    e["clip"][20:24, :] = 1
    e["clip"][0:2, 28:30] = 2
    return e


def test_convert_supervisely_geometries_end_to_end(tmp_path):
    project = geometry_project(tmp_path / "proj")
    out = tmp_path / "out"
    res = run("convert", "supervisely", project, out, "--workers", 1)
    assert res.exit_code == 0, res.output
    info = json.loads((out / "dataset.json").read_text())
    assert [(c["name"], c["color"]) for c in info["classes"]] == [
        ("background", [0, 0, 0]),
        ("scratch", [255, 0, 0]),
        ("dent", [0, 255, 0]),
        ("rust", [0, 0, 255]),
    ]
    assert info["source"]["format"] == "supervisely" and info["skipped"] == [] and info["warnings"] == []
    rows = rows_of(out)
    assert list(rows) == sorted(rows)
    assert set(rows) == {f"ds 1/{s}" for s in ("car 12", "rect", "floats", "empty")} | {
        f"ds2/{s}" for s in ("bitmap", "overlap", "clip")
    }
    car = rows["ds 1/car 12"]
    assert (car["image"], car["mask"]) == ("images/ds 1/car 12.png", "masks/ds 1/car 12.png")
    assert car["source"] == {
        "format": "supervisely",
        "image": "ds 1/img/car 12.jpg",
        "annotation": "ds 1/ann/car 12.jpg.json",
    }
    src = cv2.cvtColor(cv2.imread(str(project / "ds 1/img/car 12.jpg")), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(read_image(out / car["image"]), src)  # the decoded JPEG, stored losslessly
    for stem, expected in expected_masks().items():
        sid = f"ds 1/{stem}" if f"ds 1/{stem}" in rows else f"ds2/{stem}"
        np.testing.assert_array_equal(index_mask(out, rows[sid]), expected, err_msg=sid)
        names = {1: "scratch", 2: "dent", 3: "rust"}
        assert rows[sid]["classes"] == {
            names[k]: int((expected == k).sum()) for k in (1, 2, 3) if (expected == k).any()
        }
    m = index_mask(out, car)
    assert m[12, 4] == 0 and m[10, 3] == 0 and m[14, 6] == 0  # inside the hole and on its boundary
    assert m[2, 2] == 1 and m[16, 20] == 1 and m[12, 8] == 1  # exterior boundary, notch edge
    assert m[12, 11] == 0  # inside the concave notch
    assert rows["ds 1/empty"]["label"] == "good" and rows["ds 1/empty"]["classes"] == {}
    assert rows["ds2/overlap"]["label"] == "dent,rust,scratch"
    assert run("verify", out).exit_code == 0


def test_points_and_lines_are_skipped_with_a_warning(tmp_path):
    point = {"classTitle": "scratch", "geometryType": "point", "points": {"exterior": [[3, 3]], "interior": []}}
    line = {"classTitle": "dent", "geometryType": "line", "points": {"exterior": [[1, 1], [9, 9]], "interior": []}}
    project = make_supervisely(
        tmp_path / "proj", {"ds": {"a": [point, sly_rectangle("rust", (1, 1), (2, 2)), line]}}, classes=CLASSES
    )
    out = tmp_path / "out"
    res = run("convert", "supervisely", project, out, "-j", 1)
    assert res.exit_code == 0, res.output
    ann = str(project / "ds/ann/a.png.json")
    assert f"warning: {ann}: objects[0]: point of class 'scratch' has no area and was skipped" in res.output
    assert f"warning: {ann}: objects[2]: line of class 'dent' has no area and was skipped" in res.output
    info = json.loads((out / "dataset.json").read_text())
    assert info["warnings"] == [
        {"path": ann, "reason": "objects[0]: point of class 'scratch' has no area and was skipped"},
        {"path": ann, "reason": "objects[2]: line of class 'dent' has no area and was skipped"},
    ]
    assert rows_of(out)["ds/a"]["classes"] == {"rust": 4}


def test_workers_give_byte_identical_output(tmp_path):
    project = geometry_project(tmp_path / "proj")
    outs = []
    for j in (1, 2):
        out = tmp_path / f"out{j}"
        res = run("convert", "supervisely", project, out, "--workers", j)
        assert res.exit_code == 0, res.output
        outs.append(out)
    files = sorted(p.relative_to(outs[0]) for p in outs[0].rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(outs[1]) for p in outs[1].rglob("*") if p.is_file())
    assert len(files) == 2 + 2 * 7
    for f in files:
        a, b = (outs[0] / f).read_bytes(), (outs[1] / f).read_bytes()
        if f.name == "dataset.json":  # only the recorded argv (with --workers) may differ
            a, b = (json.loads(x) for x in (a, b))
            a.pop("created_by"), b.pop("created_by")
        assert a == b, f


# --- errors: every problem listed with its file, exit 1, OUT not created ---------------------------------


def good_project(root):
    return make_supervisely(
        root,
        {"ds": {"a": [sly_rectangle("scratch", (1, 1), (4, 4))], "b": [sly_polygon("dent", [(2, 2), (9, 2), (5, 8)])]}},
        classes=CLASSES,
    )


def assert_fails(tmp_path, project, *expected):
    out = tmp_path / "out"
    res = run("convert", "supervisely", project, out, "-j", 1)
    assert res.exit_code == 1, res.output
    for text in expected:
        assert text in res.output, (text, res.output)
    assert "Traceback" not in res.output and isinstance(res.exception, SystemExit)
    assert not out.exists()
    return res


def test_invalid_annotation_json(tmp_path):
    project = good_project(tmp_path / "p")
    (project / "ds/ann/a.png.json").write_text('{"objects": [')
    assert_fails(tmp_path, project, f"error: {project / 'ds/ann/a.png.json'}: invalid JSON", "1 problem found")


def test_invalid_meta_json(tmp_path):
    project = good_project(tmp_path / "p")
    (project / "meta.json").write_text("{classes: }")
    assert_fails(tmp_path, project, f"error: {project / 'meta.json'}: invalid JSON")


def test_annotation_whose_image_is_missing(tmp_path):
    project = good_project(tmp_path / "p")
    (project / "ds/img/b.png").unlink()
    assert_fails(tmp_path, project, f"error: {project / 'ds/ann/b.png.json'}: annotation whose image is missing")


def test_corrupt_image(tmp_path):
    project = good_project(tmp_path / "p")
    (project / "ds/img/a.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    assert_fails(tmp_path, project, f"error: {project / 'ds/img/a.png'}: not a readable image")


def test_unknown_class_title(tmp_path):
    project = good_project(tmp_path / "p")
    ann_path = project / "ds/ann/b.png.json"
    ann = json.loads(ann_path.read_text())
    ann["objects"].append(sly_rectangle("dirt", (0, 0), (1, 1)))
    ann_path.write_text(json.dumps(ann))
    assert_fails(
        tmp_path,
        project,
        f"error: {ann_path}: objects[1]: unknown class title 'dirt' (meta.json classes: dent, rust, scratch)",
    )


def test_duplicate_palette_colour_in_meta(tmp_path):
    project = good_project(tmp_path / "p")
    meta = json.loads((project / "meta.json").read_text())
    meta["classes"][2]["color"] = "#FF0000"
    (project / "meta.json").write_text(json.dumps(meta))
    assert_fails(
        tmp_path, project, f"error: {project / 'meta.json'}: classes 'scratch' and 'rust' share colour [255, 0, 0]"
    )


def test_annotation_size_differs_from_image(tmp_path):
    project = good_project(tmp_path / "p")
    ann_path = project / "ds/ann/a.png.json"
    ann = json.loads(ann_path.read_text())
    ann["size"] = {"height": 41, "width": 50}
    ann_path.write_text(json.dumps(ann))
    assert_fails(tmp_path, project, f"error: {ann_path}: annotation size 50x41 differs from its image 50x40")


def test_all_problems_are_listed_at_once_and_skip_invalid_keeps_the_rest(tmp_path):
    project = good_project(tmp_path / "p")
    make_supervisely(project, {"ds": {"c": [sly_rectangle("rust", (0, 0), (3, 3))]}}, classes=CLASSES)
    (project / "ds/ann/a.png.json").write_text("nope")
    (project / "ds/img/b.png").write_bytes(b"")
    res = assert_fails(tmp_path, project, "2 problems found; nothing was written.")
    assert f"error: {project / 'ds/ann/a.png.json'}: invalid JSON" in res.output
    assert f"error: {project / 'ds/img/b.png'}: file is empty" in res.output
    out = tmp_path / "out"
    res = run("convert", "supervisely", project, out, "-j", 1, "--skip-invalid")
    assert res.exit_code == 0, res.output
    assert list(rows_of(out)) == ["ds/c"]
    skipped = json.loads((out / "dataset.json").read_text())["skipped"]
    assert [s["path"] for s in skipped] == [str(project / "ds/ann/a.png.json"), str(project / "ds/img/b.png")]
    assert skipped[0]["reason"].startswith("invalid JSON") and skipped[1]["reason"] == "file is empty"


# --- rasterizer: behaviour pinned from the Supervisely SDK, and the bounding-box fast path ----------------


def test_float_and_negative_coordinates_are_floored_like_the_sdk():
    # Pixels copied from supervisely 6.74.51 Annotation.draw (8×10 image); truncation would differ at (0, 0).
    shapes = parse_objects(
        {"objects": [sly_polygon("scratch", [(-1.5, -0.5), (6.7, 1.2), (3.2, 7.9)])]}, {"scratch": 1}, "a.json"
    )
    np.testing.assert_array_equal(
        rasterize(shapes, (8, 10)),
        np.array(
            [
                [1, 1, 1, 1, 1, 0, 0, 0, 0, 0],
                [1, 1, 1, 1, 1, 1, 1, 0, 0, 0],
                [1, 1, 1, 1, 1, 1, 0, 0, 0, 0],
                [0, 1, 1, 1, 1, 1, 0, 0, 0, 0],
                [0, 1, 1, 1, 1, 0, 0, 0, 0, 0],
                [0, 0, 1, 1, 1, 0, 0, 0, 0, 0],
                [0, 0, 1, 1, 0, 0, 0, 0, 0, 0],
                [0, 0, 0, 1, 0, 0, 0, 0, 0, 0],
            ]
        ),
    )
    np.testing.assert_array_equal(polygon_points([(-0.5, 2.7), (3.999, -2.0), (1, 1)]), [[-1, 2], [3, -2], [1, 1]])
    np.testing.assert_array_equal(rectangle_corners([(6.9, 4.99), (-1.2, -0.5)]), [-2, -1, 6, 4])


def test_polygon_crossing_the_border_is_cropped_like_the_sdk():
    # The SDK crops a polygon leaving the image with shapely and rounds the new vertices, which moves the
    # clipped edges: a plain clipped cv2.fillPoly would differ in 4 pixels. Pixels copied from the SDK.
    shapes = parse_objects({"objects": [sly_polygon("dent", [(5, 12), (-1, 10), (7, -6)])]}, {"dent": 2}, "a.json")
    expected = np.zeros((8, 10), np.uint8)
    for y, (x0, x1) in enumerate([(4, 6), (3, 6), (3, 6), (2, 6), (2, 6), (1, 6), (1, 6), (0, 6)]):
        expected[y, x0 : x1 + 1] = 2
    np.testing.assert_array_equal(rasterize(shapes, (8, 10)), expected)
    # A self-intersecting polygon leaving the image is repaired by buffer(0) first: one lobe survives.
    shapes = parse_objects(
        {"objects": [sly_polygon("rust", [(-4, 1), (8, 6), (8, 1), (-4, 6)])]}, {"rust": 3}, "b.json"
    )
    expected = np.zeros((8, 10), np.uint8)
    expected[3, 0:2] = expected[4, 0:3] = 3
    np.testing.assert_array_equal(rasterize(shapes, (8, 10)), expected)


points = st.tuples(st.integers(-15, 45), st.integers(-15, 45))


@settings(max_examples=300, deadline=None)
@given(
    h=st.integers(1, 32),
    w=st.integers(1, 32),
    exterior=st.lists(points, min_size=3, max_size=9),
    holes=st.lists(st.lists(points, min_size=3, max_size=6), max_size=3),
    value=st.integers(1, 255),
)
def test_draw_polygon_on_its_bounding_box_equals_full_image_fillpoly(h, w, exterior, holes, value):
    ext = np.array(exterior, np.int32)
    ints = [np.array(r, np.int32) for r in holes]
    canvas = np.full((h, w), 7, np.uint8)
    draw_polygon(canvas, ext, ints, value)
    ref = np.zeros((h, w), np.uint8)
    cv2.fillPoly(ref, [ext.reshape(-1, 1, 2)], 1)
    if ints:
        cv2.fillPoly(ref, [r.reshape(-1, 1, 2) for r in ints], 0)
    np.testing.assert_array_equal(canvas, np.where(ref == 1, value, 7))
