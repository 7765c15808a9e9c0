"""`defectkit infer`: segment new images with a trained model.

For every input image OUT gets `masks/<stem>.png` (colorized class mask at the image's size),
`overlays/<stem>.png` (the mask alpha-blended over the image on defect pixels) and
`regions/<stem>.json` (class areas in pixels and one box per connected defect region).

Tiled mode is for images larger than the model input: overlapping tiles are predicted and their
class probabilities blended with a Hann window, so tile borders — where a convolutional network
sees zero padding — weigh little wherever another tile covers them centrally (no seams; the
original cut tiles without blending and mis-cropped the last row/column). A model trained on crops
(`[data] crop_size`) runs tiled by default, with tile = crop_size, i.e. at the resolution it learnt.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from datatools.errors import InputError, Problem
from datatools.files import IMAGE_EXTENSIONS, ImageReadError, list_images, read_image, to_rgb, write_png
from datatools.palette import Palette
from training.config import TTA_MODES, Config


def resize_probs(probs: np.ndarray, height: int, width: int) -> np.ndarray:
    """K-channel probabilities → (height, width, K), bilinear; unchanged when already that size."""
    import tensorflow as tf

    if probs.shape[:2] == (height, width):
        return probs
    return tf.image.resize(probs, (height, width), method="bilinear").numpy()


def hann_window(height: int, width: int) -> np.ndarray:
    """2-D separable Hann weights sampled at pixel centres: strictly positive, largest in the middle."""

    def w1(n: int) -> np.ndarray:
        return 0.5 - 0.5 * np.cos(2.0 * np.pi * (np.arange(n) + 0.5) / n)

    return np.outer(w1(height), w1(width)).astype(np.float32)


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets covering [0, length) with tiles of `tile` overlapping by ≥ `overlap`; last tile flush."""
    if length <= tile:
        return [0]
    stride = max(1, tile - overlap)
    starts = list(range(0, length - tile, stride))
    starts.append(length - tile)
    return starts


def _flip(x: np.ndarray, vertical: bool, horizontal: bool) -> np.ndarray:
    """Flip a batch (B, H, W, …) along H and/or W; a flip is its own inverse."""
    if vertical:
        x = x[:, ::-1]
    if horizontal:
        x = x[:, :, ::-1]
    return x


def predict_batch(model: Any, batch: np.ndarray, tta: str = "none") -> np.ndarray:
    """Probabilities of a batch; `tta = "flips"` averages them over the batch and its v/h/vh flips.

    The four views go through the model as one batch of 4·B and each is flipped back before the mean,
    so every output pixel is the mean of four predictions of the same image pixel.
    """
    x = batch.astype(np.float32)
    # A direct call, not predict_on_batch: tile batches vary in size and would retrace the predict function.
    if tta == "none":
        return np.asarray(model(x, training=False))
    if tta not in TTA_MODES:
        raise ValueError(f"unknown tta {tta!r}; valid: {', '.join(TTA_MODES)}")
    views = [(False, False), (True, False), (False, True), (True, True)]
    stacked = np.ascontiguousarray(np.concatenate([_flip(x, v, h) for v, h in views]))
    probs = np.asarray(model(stacked, training=False))
    n = len(x)
    return sum(_flip(probs[i * n : (i + 1) * n], v, h) for i, (v, h) in enumerate(views)) / len(views)


def predict_plain(model: Any, image: np.ndarray, *, tta: str = "none") -> np.ndarray:
    """Whole image resized to the model input; probabilities resized back to (H, W, K)."""
    from training.data import prepare_image

    size = (int(model.input_shape[1]), int(model.input_shape[2]))
    x = prepare_image(image, size, int(model.input_shape[3]))
    probs = predict_batch(model, x[None], tta)[0]
    return resize_probs(probs, image.shape[0], image.shape[1])


def predict_tiled(
    model: Any,
    image: np.ndarray,
    *,
    tile: int | tuple[int, int],
    overlap: int,
    batch_size: int = 4,
    tta: str = "none",
) -> np.ndarray:
    """Hann-blended sliding-window probabilities (H, W, K) at the image's own resolution.

    Tiles are `tile` image pixels (a side, or (height, width)), resized to the model input if that
    differs; images smaller than a tile are reflect-padded. Every pixel is covered, the last
    row/column of tiles sits flush with the image border.
    """
    from training.data import prepare_image

    th, tw = (tile, tile) if isinstance(tile, int) else (int(tile[0]), int(tile[1]))
    if overlap >= min(th, tw):
        shown = th if th == tw else f"{th}x{tw}"
        raise InputError(f"--overlap {overlap} must be smaller than --tile {shown}", "--overlap")
    size = (int(model.input_shape[1]), int(model.input_shape[2]))
    channels = int(model.input_shape[3])
    h, w = image.shape[:2]
    ph, pw = max(0, th - h), max(0, tw - w)
    if ph or pw:
        pad = ((0, ph), (0, pw)) + (((0, 0),) if image.ndim == 3 else ())
        image = np.pad(image, pad, mode="reflect" if min(h, w) > 1 else "edge")
    H, W = image.shape[:2]
    window = hann_window(th, tw)
    acc: np.ndarray | None = None
    weight = np.zeros((H, W), np.float32)
    boxes = [(y, x) for y in tile_starts(H, th, overlap) for x in tile_starts(W, tw, overlap)]
    for i in range(0, len(boxes), batch_size):
        chunk = boxes[i : i + batch_size]
        batch = np.stack([prepare_image(image[y : y + th, x : x + tw], size, channels) for y, x in chunk])
        probs = predict_batch(model, batch, tta)
        for (y, x), p in zip(chunk, probs, strict=True):
            p = resize_probs(p, th, tw)
            if acc is None:
                acc = np.zeros((H, W, p.shape[-1]), np.float32)
            acc[y : y + th, x : x + tw] += p * window[..., None]
            weight[y : y + th, x : x + tw] += window
    assert acc is not None
    return (acc / weight[..., None])[:h, :w]


def tiling(
    config: Config,
    *,
    tiled: bool | None = None,
    tile: int | None = None,
    overlap: int | None = None,
    section: str = "infer",
) -> tuple[bool, tuple[int, int], int]:
    """(tiled, (tile height, tile width), overlap) from explicit options, then the config.

    `tiled`: the option, else `[<section>] tiled`, else whether `[data] crop_size` is set (a model
    trained on crops runs at native resolution by default). `tile`: the option, else `[infer] tile`,
    else `crop_size`, else 512. `overlap`: the option, else `[infer] overlap`, capped at half the
    tile when the tile is the crop size (a 32-pixel crop cannot keep the default 64).
    """
    crop = config.crop_size
    if tiled is None:
        tiled = config[section].get("tiled")
    if tiled is None:
        tiled = crop is not None
    side = tile if tile is not None else config.infer["tile"]
    from_crop = side is None and crop is not None
    size = crop if from_crop else (int(side or 512),) * 2
    assert size is not None
    if overlap is None:
        overlap = int(config.infer["overlap"])
        if from_crop:
            overlap = min(overlap, min(size) // 2)
    return bool(tiled), (int(size[0]), int(size[1])), int(overlap)


def overlay(image: np.ndarray, mask: np.ndarray, palette: Palette, alpha: float) -> np.ndarray:
    """Blend class colours over the image on defect pixels only (background pixels unchanged)."""
    rgb = to_rgb(image)
    out = rgb.copy()
    defect = mask > 0  # blended there only: defects are usually a small share of the pixels
    blend = (1.0 - alpha) * rgb[defect].astype(np.float32) + alpha * palette.colorize(mask[defect]).astype(np.float32)
    out[defect] = np.clip(np.rint(blend), 0, 255).astype(np.uint8)
    return out


def regions(mask: np.ndarray, palette: Palette, *, min_area: int = 1) -> list[dict[str, Any]]:
    """One entry per 8-connected region of each defect class: class, area, box [x, y, width, height]."""
    import cv2

    out: list[dict[str, Any]] = []
    for c in palette.classes[1:]:
        binary = (mask == c.index).astype(np.uint8)
        if not binary.any():
            continue
        _, _, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
        kept = stats[1:][stats[1:, cv2.CC_STAT_AREA] >= min_area].tolist()  # one tolist, not a loop over arrays
        out += [{"class": c.name, "area": area, "box": [x, y, w, h]} for x, y, w, h, area in kept]
    out.sort(key=lambda r: (r["box"][1], r["box"][0], r["class"]))
    return out


def load_palette(config: Config) -> Palette:
    """The run's palette: `classes.json` saved by train, else the dataset's."""
    saved = config.output_dir / "classes.json"
    if saved.is_file():
        return Palette.from_json(json.loads(saved.read_text(encoding="utf-8")))
    from datatools.dataset import Dataset

    return Dataset.load(config.dataset_dir).palette


def collect_inputs(input_path: Path) -> list[Path]:
    """The images of a file or folder; outputs are named by stem, so two images sharing one are an error."""
    input_path = Path(input_path)
    if input_path.is_dir():
        files = list_images(input_path)
        if not files:
            raise InputError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in this folder", str(input_path))
        stems = [p.stem for p in files]
        dupes = sorted({s for s in stems if stems.count(s) > 1})
        if dupes:
            raise InputError([Problem(str(input_path), f"several images share the name {s!r}") for s in dupes])
        return files
    if input_path.is_file():
        return [input_path]
    raise InputError("input file or folder not found", str(input_path))


def _read(path: Path) -> tuple[Path, np.ndarray | None, str | None]:
    try:
        return path, read_image(path), None
    except ImageReadError as e:
        return path, None, str(e)


def prefetch(pool: Executor, fn: Callable[[Any], Any], items: Iterable[Any], ahead: int = 2) -> Iterator[Any]:
    """`fn(item)` for each item in order, computed in `pool` up to `ahead` items before it is consumed."""
    queue: deque[Future] = deque()
    for item in items:
        queue.append(pool.submit(fn, item))
        if len(queue) > ahead:
            yield queue.popleft().result()
    while queue:
        yield queue.popleft().result()


def write_outputs(
    tmp: Path, path: Path, image: np.ndarray, mask: np.ndarray, palette: Palette, opts: dict[str, Any], tiled: bool
) -> list[Path]:
    """masks/, overlays/ and regions/ files of one image into `tmp`; returns them."""
    stem = path.stem
    files = [tmp / "masks" / f"{stem}.png", tmp / "overlays" / f"{stem}.png", tmp / "regions" / f"{stem}.json"]
    write_png(files[0], palette.colorize(mask))
    write_png(files[1], overlay(image, mask, palette, opts["alpha"]))
    info = {
        "image": str(path),
        "width": int(image.shape[1]),
        "height": int(image.shape[0]),
        "tiled": tiled,
        "tta": opts["tta"],
        "classes": palette.counts(mask),
        "regions": regions(mask, palette, min_area=opts["min_area"]),
    }
    files[2].parent.mkdir(exist_ok=True)
    files[2].write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return files


def infer_segmentation(
    config: Config,
    input_path: Path,
    out: Path,
    *,
    tiled: bool | None = None,
    tile: int | None = None,
    overlap: int | None = None,
    overwrite: bool = False,
    model: Path | None = None,
) -> list[Path]:
    """Segment a file or folder of images into OUT (written atomically); returns the files written.

    `model`: run this file (an export: .onnx, .tflite, SavedModel folder; or a model.keras) instead of the
    run's model.keras (`training.runtime`).
    """
    from tqdm import tqdm

    from datatools.files import atomic_dir, check_output_target
    from training.runtime import open_runtime

    opts = config.infer
    tiled, tile_hw, overlap = tiling(config, tiled=tiled, tile=tile, overlap=overlap)
    if tiled and overlap >= min(tile_hw):
        shown = tile_hw[0] if tile_hw[0] == tile_hw[1] else f"{tile_hw[0]}x{tile_hw[1]}"
        raise InputError(f"overlap {overlap} must be smaller than tile {shown}", "--overlap")
    files = collect_inputs(input_path)
    check_output_target(out, overwrite=overwrite, inputs=(Path(input_path),))
    palette = load_palette(config)
    net = open_runtime(model if model is not None else config.output_dir / "model.keras", config)
    if net.output_shape[-1] != len(palette):
        raise InputError(f"model predicts {net.output_shape[-1]} classes, palette has {len(palette)}", str(net.path))
    problems: list[Problem] = []
    written: list[Path] = []
    with atomic_dir(out, overwrite=overwrite) as tmp, ThreadPoolExecutor(1) as reader, ThreadPoolExecutor(1) as writer:
        # Decoding the next image and writing the previous one's files run beside the prediction (both
        # release the GIL in OpenCV / zlib); a bounded backlog keeps memory at a few images.
        backlog: deque[Future] = deque()
        for path, image, error in tqdm(prefetch(reader, _read, files), total=len(files), desc="infer", unit="img"):
            if error is not None:
                problems.append(Problem(str(path), error))
                continue
            if tiled:
                probs = predict_tiled(net, image, tile=tile_hw, overlap=overlap, tta=opts["tta"])
            else:
                probs = predict_plain(net, image, tta=opts["tta"])
            mask = np.argmax(probs, axis=-1).astype(np.uint8)
            backlog.append(writer.submit(write_outputs, tmp, path, image, mask, palette, opts, bool(tiled)))
            while len(backlog) > 2:
                written += [out / p.relative_to(tmp) for p in backlog.popleft().result()]
        while backlog:
            written += [out / p.relative_to(tmp) for p in backlog.popleft().result()]
        if problems:
            raise InputError(problems)
    return written
