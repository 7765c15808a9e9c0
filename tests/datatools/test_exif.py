"""EXIF orientation: every source shows a phone photo the way annotation tools (and the SDK) show it."""

import json

import numpy as np
import pytest
from PIL import Image, ImageOps
from typer.testing import CliRunner

from datatools.files import exif_orientation, read_image
from defectkit.cli import app
from tests.datatools.fakes import make_supervisely, sly_rectangle

runner = CliRunner()


def save_oriented(path, upright: np.ndarray, orientation: int, fmt: str) -> None:
    """Store `upright` as a camera would: pixels turned so that applying `orientation` gives `upright` back."""
    inverse = {1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 8, 7: 7, 8: 6}[orientation]
    stored = ImageOps.exif_transpose(_with_orientation(Image.fromarray(upright), inverse))
    exif = Image.Exif()
    exif[0x0112] = orientation
    stored.save(path, format=fmt, exif=exif.tobytes(), **({"quality": 100, "subsampling": 0} if fmt == "JPEG" else {}))


def _with_orientation(im: Image.Image, orientation: int) -> Image.Image:
    exif = im.getexif()
    exif[0x0112] = orientation
    im.info["exif"] = exif.tobytes()
    return im


def pattern(h=6, w=10) -> np.ndarray:
    rng = np.random.default_rng(3)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_png_exif_orientation_matches_pil(tmp_path, orientation):
    up = pattern()
    path = tmp_path / "p.png"
    save_oriented(path, up, orientation, "PNG")
    assert exif_orientation(path.read_bytes()) == orientation
    with Image.open(path) as im:
        expected = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    np.testing.assert_array_equal(expected, up)  # the fixture itself is right
    np.testing.assert_array_equal(read_image(path), up)
    if orientation != 1:
        assert read_image(path, exif=False).shape != up.shape or not np.array_equal(read_image(path, exif=False), up)


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_jpeg_exif_orientation(tmp_path, orientation):
    up = np.zeros((16, 24, 3), np.uint8)
    up[:8, :8] = 255  # a bright corner shows where "top-left" went
    path = tmp_path / "p.jpg"
    save_oriented(path, up, orientation, "JPEG")
    got = read_image(path)
    assert got.shape == up.shape
    assert np.abs(got.astype(int) - up).max() < 40


def test_no_exif_is_orientation_1(tmp_path):
    path = tmp_path / "plain.jpg"
    Image.fromarray(pattern()).save(path)
    assert exif_orientation(path.read_bytes()) == 1
    assert exif_orientation(b"not an image") == 1


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_supervisely_phone_photo_pairs_with_its_annotation(tmp_path, orientation):
    """The annotation was drawn on the upright picture (size = displayed size); the mask must sit on it."""
    h, w = 20, 30
    project = make_supervisely(
        tmp_path / "proj", {"ds": {"phone": [sly_rectangle("scratch", (2, 3), (9, 5))]}}, size=(h, w), ext=".jpg"
    )
    up = np.full((h, w, 3), 40, np.uint8)
    up[3:6, 2:10] = 250  # the scratch, where the annotation says
    img_path = project / "ds/img/phone.jpg"
    save_oriented(img_path, up, orientation, "JPEG")
    out = tmp_path / "out"
    result = runner.invoke(app, ["convert", "supervisely", str(project), str(out)])
    assert result.exit_code == 0, result.output
    row = json.loads((out / "manifest.jsonl").read_text().splitlines()[0])
    assert (row["width"], row["height"]) == (w, h)
    image = read_image(out / row["image"])
    mask = read_image(out / row["mask"])
    defect = (mask != 0).any(axis=2)
    assert defect.sum() == 3 * 8
    assert image[defect].mean() > 200 and image[~defect].mean() < 80


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_folders_phone_photo_pairs_with_its_mask(tmp_path, orientation):
    """A colour mask drawn on the upright photo (as labelling tools show it) pairs with the EXIF-rotated JPEG."""
    from tests.datatools.fakes import write_png

    h, w = 20, 30
    up = np.full((h, w, 3), 40, np.uint8)
    up[3:6, 2:10] = 250
    mask = np.zeros((h, w, 3), np.uint8)
    mask[3:6, 2:10] = (255, 0, 0)
    (tmp_path / "src/images").mkdir(parents=True)
    save_oriented(tmp_path / "src/images/phone.jpg", up, orientation, "JPEG")
    write_png(tmp_path / "src/masks/phone.png", mask)
    (tmp_path / "p.json").write_text('{"scratch": [255, 0, 0]}')
    out = tmp_path / "out"
    result = runner.invoke(
        app, ["convert", "folders", str(tmp_path / "src"), str(out), "--palette", str(tmp_path / "p.json")]
    )
    assert result.exit_code == 0, result.output
    row = json.loads((out / "manifest.jsonl").read_text().splitlines()[0])
    assert (row["width"], row["height"], row["classes"]) == (w, h, {"scratch": 24})
    image = read_image(out / row["image"])
    defect = (read_image(out / row["mask"]) != 0).any(axis=2)
    assert image[defect].mean() > 200 and image[~defect].mean() < 80


@pytest.mark.parametrize("fmt", ["coco", "cvat"])
def test_coco_and_cvat_use_the_upright_picture(tmp_path, fmt):
    """A sideways-stored photo (orientation 6) is listed upright (W×H as shown) and annotated upright."""
    up = pattern(8, 12)
    (tmp_path / "images").mkdir()
    save_oriented(tmp_path / "images" / "phone.png", up, 6, "PNG")
    if fmt == "coco":
        ann = tmp_path / "instances.json"
        seg = [[1.5, 0.5, 4.5, 0.5, 4.5, 2.5, 1.5, 2.5]]  # pixels x 2..4, y 1..2 of the upright picture
        ann.write_text(json.dumps({
            "images": [{"id": 1, "file_name": "phone.png", "width": 12, "height": 8}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": seg}],
            "categories": [{"id": 1, "name": "dent"}],
        }))  # fmt: skip
    else:
        ann = tmp_path / "annotations.xml"
        ann.write_text(
            "<annotations><meta><task><labels><label><name>dent</name></label></labels></task></meta>"
            '<image id="0" name="phone.png" width="12" height="8">'
            '<polygon label="dent" points="1.5,0.5;4.5,0.5;4.5,2.5;1.5,2.5"/></image></annotations>'
        )
    out = tmp_path / "out"
    res = runner.invoke(app, ["convert", fmt, str(ann), str(tmp_path / "images"), str(out)])
    assert res.exit_code == 0, res.output
    row = json.loads((out / "manifest.jsonl").read_text().splitlines()[0])
    np.testing.assert_array_equal(read_image(out / row["image"]), up)
    mask = read_image(out / row["mask"]).any(axis=2)
    expected = np.zeros((8, 12), bool)
    expected[1:3, 2:5] = True
    np.testing.assert_array_equal(mask, expected)
