"""`defectkit convert labelme`: classes, every shape's pixels, imageData / imagePath, EXIF, ids, errors.

Expected masks are written by hand (numpy slices) for integer shapes; tests/datatools/test_oracle_labelme.py
checks the rasterizer against labelme's own `shapes_to_label` on random float shapes.
"""

import base64
import json

import cv2
import numpy as np
from PIL import Image
from typer.testing import CliRunner

from datatools.files import read_image
from defectkit.cli import app
from tests.datatools.fakes import lm_mask, lm_shape, make_labelme
from tests.datatools.test_exif import save_oriented

runner = CliRunner()
H, W = 30, 40
COLORS = {0: (0, 0, 0), 1: (0, 0, 255), 2: (255, 0, 0), 3: (0, 255, 0)}  # default palette
U_SHAPE = [(2, 2), (20, 2), (20, 16), (14, 16), (14, 8), (8, 8), (8, 16), (2, 16)]  # notch x 8..14, y 8..16
BLOB = np.array([[0, 1, 1, 0], [1, 1, 1, 1], [0, 1, 0, 0]], bool)


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def rows_of(out):
    return {r["id"]: r for r in (json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines())}


def index_mask(out, row, colors=COLORS) -> np.ndarray:
    rgb = read_image(out / row["mask"])
    idx = np.full(rgb.shape[:2], 255, np.uint8)
    for k, c in colors.items():
        idx[(rgb == c).all(axis=2)] = k
    assert (idx != 255).all(), "mask holds a colour outside the palette"
    return idx


def geometry_folder(root):
    return make_labelme(
        root,
        {
            "concave": [lm_shape("scratch", U_SHAPE)],
            "sub dir/rect": [lm_shape("dent", [(10, 9), (3, 4)], "rectangle")],  # reversed corners
            "sub dir/circle": [lm_shape("rust", [(20, 15), (20, 19)], "circle")],
            "overlap": [
                lm_shape("scratch", [(0, 0), (9, 9)], "rectangle"),
                lm_shape("dent", [(5, 5), (14, 5), (14, 14), (5, 14)]),
                lm_mask("rust", BLOB, (8, 8)),
            ],
            "clip": [
                lm_shape("scratch", [(-5, 25), (45, 40)], "rectangle"),
                lm_shape("dent", [(30, -3), (50, 4)], "rectangle"),
            ],
            "embedded": [lm_shape("rust", [(1, 1), (4, 1), (4, 3), (1, 3)], "polygon")],
            "empty": [],
        },
        size=(H, W),
        embed=("embedded",),
    )


def expected_masks() -> dict[str, np.ndarray]:
    e = {k: np.zeros((H, W), np.uint8) for k in ("concave", "sub dir/rect", "sub dir/circle", "overlap", "clip")}
    e |= {k: np.zeros((H, W), np.uint8) for k in ("embedded", "empty")}
    m = e["concave"]
    m[2:17, 2:21] = 1  # outline included
    m[9:17, 9:14] = 0  # the concave notch; its edges belong to the polygon
    e["sub dir/rect"][4:10, 3:11] = 2  # both corners included
    yy, xx = np.mgrid[:H, :W]
    # radius 4: PIL's ellipse of the inclusive box 16..24 × 11..19, 9 pixels across (here: within √18)
    e["sub dir/circle"][(xx - 20) ** 2 + (yy - 15) ** 2 <= 18] = 3
    m = e["overlap"]
    m[0:10, 0:10] = 1
    m[5:15, 5:15] = 2
    m[8:11, 8:12][BLOB] = 3
    e["clip"][25:30, :] = 1
    e["clip"][0:5, 30:40] = 2
    e["embedded"][1:4, 1:5] = 3
    return e


def test_convert_labelme_geometries_end_to_end(tmp_path):
    images = geometry_folder(tmp_path / "lm")
    out = tmp_path / "out"
    res = run("convert", "labelme", tmp_path / "lm", out, "--workers", 1)
    assert res.exit_code == 0, res.output
    info = json.loads((out / "dataset.json").read_text())
    assert [c["name"] for c in info["classes"]] == ["background", "dent", "rust", "scratch"]  # sorted labels
    assert info["source"]["format"] == "labelme" and info["skipped"] == [] and info["warnings"] == []
    rows = rows_of(out)
    assert list(rows) == sorted(expected_masks())
    assert rows["sub dir/rect"]["source"] == {
        "format": "labelme",
        "annotation": "sub dir/rect.json",
        "image": "sub dir/rect.png",
    }
    assert rows["embedded"]["source"]["image"] == "imageData"
    remap = {0: 0, 1: 3, 2: 1, 3: 2}  # scratch, dent, rust of the expectations → sorted class indices
    for sid, expected in expected_masks().items():
        want = np.vectorize(remap.get)(expected).astype(np.uint8)
        np.testing.assert_array_equal(index_mask(out, rows[sid]), want, err_msg=sid)
        np.testing.assert_array_equal(read_image(out / rows[sid]["image"]), images[sid], err_msg=sid)
    assert rows["empty"]["label"] == "good"
    assert run("verify", out).exit_code == 0


def test_classes_option_sets_the_order_and_palette(tmp_path):
    geometry_folder(tmp_path / "lm")
    pal = tmp_path / "palette.json"
    pal.write_text(json.dumps({"rust": "#123456"}))
    out = tmp_path / "out"
    res = run("convert", "labelme", tmp_path / "lm", out, "--classes", "scratch,dent,rust,spare", "--palette", pal)
    assert res.exit_code == 0, res.output
    info = json.loads((out / "dataset.json").read_text())
    assert [(c["name"], c["color"]) for c in info["classes"]][1:] == [
        ("scratch", [0, 0, 255]),
        ("dent", [255, 0, 0]),
        ("rust", [0x12, 0x34, 0x56]),
        ("spare", [255, 255, 0]),
    ]
    colors = {0: (0, 0, 0), 1: (0, 0, 255), 2: (255, 0, 0), 3: (0x12, 0x34, 0x56)}
    rows = rows_of(out)
    for sid, expected in expected_masks().items():
        np.testing.assert_array_equal(index_mask(out, rows[sid], colors), expected, err_msg=sid)


def test_points_and_lines_are_skipped_with_a_warning(tmp_path):
    shapes = [
        lm_shape("scratch", [(3, 3)], "point"),
        lm_shape("dent", [(1, 1), (9, 9)], "line"),
        lm_shape("dent", [(1, 1), (9, 9), (9, 1)], "linestrip"),
        lm_shape("rust", [(1, 1), (2, 2)], "rectangle"),
        lm_shape("rust", [(1, 1), (5, 5)], "polygon"),  # 2 points: labelme's shape_to_mask refuses it
    ]
    make_labelme(tmp_path / "lm", {"a": shapes})
    out = tmp_path / "out"
    res = run("convert", "labelme", tmp_path / "lm", out, "-j", 1)
    assert res.exit_code == 0, res.output
    ann = str(tmp_path / "lm/a.json")
    info = json.loads((out / "dataset.json").read_text())
    assert info["warnings"] == [
        {"path": ann, "reason": "shapes[0]: point of label 'scratch' has no area and was skipped"},
        {"path": ann, "reason": "shapes[1]: line of label 'dent' has no area and was skipped"},
        {"path": ann, "reason": "shapes[2]: linestrip of label 'dent' has no area and was skipped"},
        {"path": ann, "reason": "shapes[4]: polygon of label 'rust' has 2 points and was skipped"},
    ]
    assert f"warning: {ann}: shapes[0]: point of label 'scratch'" in res.output
    assert [c["name"] for c in info["classes"]] == ["background", "rust"]  # labels of drawn shapes only
    assert rows_of(out)["a"]["classes"] == {"rust": 4}


def test_image_data_wins_over_image_path(tmp_path):
    """labelme reads imageData when it is not null and ignores imagePath; so do we."""
    images = make_labelme(tmp_path / "lm", {"a": [lm_shape("cut", [(1, 1), (3, 3)], "rectangle")]}, embed=("a",))
    other = np.zeros((H, W, 3), np.uint8)
    cv2.imwrite(str(tmp_path / "lm/a.png"), other)  # the file imagePath names holds a different picture
    out = tmp_path / "out"
    assert run("convert", "labelme", tmp_path / "lm", out).exit_code == 0
    np.testing.assert_array_equal(read_image(out / rows_of(out)["a"]["image"]), images["a"])


def test_windows_image_path_and_no_size_fields(tmp_path):
    lm = tmp_path / "lm"
    (lm / "imgs").mkdir(parents=True)
    img = np.full((H, W, 3), 90, np.uint8)
    cv2.imwrite(str(lm / "imgs" / "x.png"), img)
    ann = {"shapes": [lm_shape("cut", [(1, 1), (3, 3)], "rectangle")], "imagePath": "imgs\\x.png", "imageData": None}
    (lm / "x.json").write_text(json.dumps(ann))  # labelme 3.x files: no imageHeight / imageWidth
    out = tmp_path / "out"
    res = run("convert", "labelme", lm, out)
    assert res.exit_code == 0, res.output
    assert rows_of(out)["x"]["source"]["image"] == "imgs/x.png"
    assert rows_of(out)["x"]["classes"] == {"cut": 9}


def test_exif_rotated_jpeg_is_read_upright(tmp_path):
    """labelme applies the EXIF orientation of an imagePath file: shapes and imageHeight/Width are upright."""
    lm = tmp_path / "lm"
    lm.mkdir()
    up = np.zeros((20, 36, 3), np.uint8)  # upright: 36 wide, 20 high
    up[:, :18] = 220
    save_oriented(lm / "phone.jpg", up, 6, "JPEG")  # stored 20 wide, 36 high
    with Image.open(lm / "phone.jpg") as im:
        assert im.size == (20, 36)
    shapes = [lm_shape("cut", [(30, 2), (33, 5)], "rectangle")]  # only inside the upright picture
    ann = {"shapes": shapes, "imagePath": "phone.jpg", "imageData": None, "imageHeight": 20, "imageWidth": 36}
    (lm / "phone.json").write_text(json.dumps(ann))
    out = tmp_path / "out"
    res = run("convert", "labelme", lm, out)
    assert res.exit_code == 0, res.output
    row = rows_of(out)["phone"]
    image = read_image(out / row["image"])
    assert image.shape == (20, 36, 3) and image[:, :16].mean() > 200 and image[:, 20:].mean() < 30
    mask = index_mask(out, row)
    assert mask[2:6, 30:34].all() and mask.sum() == 16


def test_workers_give_identical_output(tmp_path):
    geometry_folder(tmp_path / "lm")
    outs = []
    for j in (1, 2):
        out = tmp_path / f"out{j}"
        assert run("convert", "labelme", tmp_path / "lm", out, "--workers", j).exit_code == 0
        outs.append(out)
    files = sorted(p.relative_to(outs[0]) for p in outs[0].rglob("*.png"))
    assert len(files) == 14
    assert all((outs[0] / f).read_bytes() == (outs[1] / f).read_bytes() for f in files)
    assert (outs[0] / "manifest.jsonl").read_text() == (outs[1] / "manifest.jsonl").read_text()


# --- errors: every problem listed with its file, exit 1, OUT not created ---------------------------------


def bad_folder(root):
    make_labelme(
        root,
        {
            "good": [lm_shape("cut", [(1, 1), (4, 4)], "rectangle")],
            "missing": [lm_shape("cut", [(1, 1), (4, 4)], "rectangle")],
            "size": [lm_shape("cut", [(1, 1), (4, 4)], "rectangle")],
            "label": [lm_shape("dent", [(1, 1), (4, 4)], "rectangle")],
            "geometry": [
                lm_shape("cut", [(1, 1), (4, 4), (2, 2)], "rectangle"),
                lm_shape("cut", [(1, "a"), (4, 4), (2, 2)]),
                lm_shape("cut", [(1, 1), (4, 4)], "ellipse"),
            ],
            "embedded": [lm_shape("cut", [(1, 1), (4, 4)], "rectangle")],
        },
        embed=("embedded",),
    )
    (root / "invalid.json").write_text("{not json")
    (root / "missing.png").unlink()
    ann = json.loads((root / "size.json").read_text())
    (root / "size.json").write_text(json.dumps({**ann, "imageHeight": 31}))
    ann = json.loads((root / "embedded.json").read_text())
    (root / "embedded.json").write_text(json.dumps({**ann, "imageData": base64.b64encode(b"junk").decode()}))
    return root


EXPECTED_PROBLEMS = [
    ("invalid.json", "invalid JSON"),
    ("missing.json", "image not found: imagePath 'missing.png'"),
    ("size.json", "imageWidth x imageHeight 40x31 differs from the image's 40x30"),
    ("label.json", "labels not in --classes: 'dent'"),
    ("geometry.json", "shapes[0] (rectangle): needs exactly 2 points, got 3"),
    ("geometry.json", "shapes[1] (polygon): 'points' must be a list of finite [x, y] numbers"),
    ("geometry.json", "shapes[2]: unsupported shape_type 'ellipse'"),
    ("embedded.json", "imageData: not a readable image"),
]


def test_every_problem_is_listed_and_nothing_is_written(tmp_path):
    lm = bad_folder(tmp_path / "lm")
    out = tmp_path / "out"
    res = run("convert", "labelme", lm, out, "--classes", "cut", "-j", 1)
    assert res.exit_code == 1, res.output
    for name, text in EXPECTED_PROBLEMS:
        assert f"{lm / name}: {text}" in res.output, (name, text, res.output)
    assert "Traceback" not in res.output and isinstance(res.exception, SystemExit)
    assert not out.exists()


def test_skip_invalid_writes_the_good_samples(tmp_path):
    lm = bad_folder(tmp_path / "lm")
    out = tmp_path / "out"
    res = run("convert", "labelme", lm, out, "--classes", "cut", "--skip-invalid", "-j", 2)
    assert res.exit_code == 0, res.output
    assert list(rows_of(out)) == ["good"]
    skipped = json.loads((out / "dataset.json").read_text())["skipped"]
    for name, text in EXPECTED_PROBLEMS:
        assert any(p["path"] == str(lm / name) and p["reason"].startswith(text) for p in skipped), (name, skipped)
    assert run("verify", out).exit_code == 0


def test_bad_classes_option_and_empty_folder(tmp_path):
    geometry_folder(tmp_path / "lm")
    res = run("convert", "labelme", tmp_path / "lm", tmp_path / "out", "--classes", "a,a")
    assert res.exit_code == 1 and "--classes must be distinct non-empty names" in res.output
    (tmp_path / "none").mkdir()
    res = run("convert", "labelme", tmp_path / "none", tmp_path / "out")
    assert res.exit_code == 1 and "no LabelMe .json files found" in res.output
    assert not (tmp_path / "out").exists()
