"""Benchmark: end-to-end `defectkit infer --tiled` throughput on 1024² images vs the bare model compute.

    .venv/bin/python bench/infer.py [--images 8] [--size 1024] [--tile 256] [--overlap 64] [--train-steps 400]
                                       [--repeats 3]

A small FlexUNet (f 8, k 3, n 4, 256² input, 3 classes) is first trained for about 30 s on 64² crops of
generated images (bright 'cut' and dark 'glue' rectangles on gray noise), then on 1024² PNGs of the same
kind, all measured in the same run:
1. pipeline: `training.segmentation.infer.infer_segmentation` (decode, Hann-blended tiles with overlap,
   argmax, colorize, overlay, regions, PNG writes; decoding and writing in threads beside prediction);
2. bare compute: the same tiles (same grid and batch of 4) through the same model, inputs in memory;
   goal: pipeline ≤ 1.25 × bare;
3. the original's tiled method as a peer (TensorFlowFlexModel.tiled_infer_file: split_size tiles with an
   `overlapping` margin, each padded tile resized to the model input, argmax, mask resized back and pasted
   without blending): images/s, and IoU against the truth within 8 px of its tile seams and overall.
Best of three interleaved repeats for the timings (the machine may be shared).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

CLASSES = ["cut", "glue"]


def sample(rng: np.random.Generator, size: int, n_defects: int) -> tuple[np.ndarray, np.ndarray]:
    """(RGB uint8 image, class mask): rectangles of 'cut' (bright) and 'glue' (dark) on gray noise."""
    image = np.clip(rng.normal(110, 12, size=(size, size)), 0, 255)
    mask = np.zeros((size, size), np.uint8)
    for i in range(n_defects):
        cls = 1 + i % 2
        h, w = rng.integers(size // 16, size // 5, 2)
        y, x = rng.integers(0, size - h), rng.integers(0, size - w)
        mask[y : y + h, x : x + w] = cls
        image[y : y + h, x : x + w] = (235.0 if cls == 1 else 10.0) + rng.normal(0, 5, size=(h, w))
    image = np.clip(image, 0, 255).astype(np.uint8)
    return np.repeat(image[:, :, None], 3, axis=2), mask


def train_model(steps: int, seed: int = 0) -> Any:
    """FlexUNet at 256² input with weights learnt on 64² crops (the network is fully convolutional)."""
    import keras

    from training.models.flexunet import build_flexunet

    keras.utils.set_random_seed(seed)
    kw = {"base_filters": 8, "base_kernels": (3, 3), "num_layers": 4, "dropout_rate": 0.0}
    small = build_flexunet((64, 64), 3, 3, **kw)
    small.compile(optimizer=keras.optimizers.Adam(5e-3), loss="categorical_crossentropy")
    rng = np.random.default_rng(seed)
    pairs = [sample(rng, 64, 2) for _ in range(256)]
    x = np.stack([p[0] for p in pairs]).astype(np.float32)
    y = keras.utils.to_categorical(np.stack([p[1] for p in pairs]), 3)
    small.fit(x, y, batch_size=16, epochs=max(1, steps * 16 // len(x)), verbose=0)
    model = build_flexunet((256, 256), 3, 3, **kw)
    model.set_weights(small.get_weights())
    return model


def original_tiled(model: Any, image: np.ndarray, split: int, margin: int) -> np.ndarray:
    """The original's tiled_infer_file: padded tile → resize to input → argmax → resize back, paste."""
    import cv2

    h, w = image.shape[:2]
    ih, iw = int(model.input_shape[1]), int(model.input_shape[2])
    out = np.zeros((h, w), np.uint8)
    for top in range(0, h, split):
        for left in range(0, w, split):
            lm = margin if left - margin >= 0 else 0
            um = margin if top - margin >= 0 else 0
            rm = margin if left + split + margin <= w else 0
            bm = margin if top + split + margin <= h else 0
            crop = image[top - um : min(h, top + split + bm), left - lm : min(w, left + split + rm)]
            ch, cw = crop.shape[:2]
            x = cv2.resize(crop, (iw, ih), interpolation=cv2.INTER_LINEAR).astype(np.float32)
            pred = np.argmax(np.asarray(model(x[None], training=False))[0], axis=-1).astype(np.uint8)
            pred = cv2.resize(pred, (cw, ch), interpolation=cv2.INTER_NEAREST)
            piece = pred[um : min(ch, um + ih), lm : min(cw, lm + iw)]  # its crop: input size, not split size
            ph, pw = min(piece.shape[0], h - top), min(piece.shape[1], w - left)
            out[top : top + ph, left : left + pw] = piece[:ph, :pw]
    return out


def mean_iou(truth: np.ndarray, pred: np.ndarray, where: np.ndarray) -> float:
    ious = []
    for c in (1, 2):
        t, p = (truth == c) & where, (pred == c) & where
        union = (t | p).sum()
        if union:
            ious.append((t & p).sum() / union)
    return float(np.mean(ious)) if ious else float("nan")


def seam_band(size: int, tile: int, width: int = 8) -> np.ndarray:
    """Pixels within `width` of the original's tile borders (multiples of `tile`)."""
    d = np.arange(size) % tile
    near = (d < width) | (d >= tile - width)
    near[:width] = near[-width:] = False  # image borders are no seams
    return near[:, None] | near[None, :]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--tile", type=int, default=256)
    parser.add_argument("--overlap", type=int, default=64)
    parser.add_argument("--train-steps", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from datatools.dataset import new_info, write_info, write_manifest
    from datatools.files import read_image, write_png
    from datatools.palette import Palette
    from training.config import config_from_dict
    from training.data import prepare_image
    from training.segmentation.infer import infer_segmentation, predict_tiled, tile_starts

    print(f"CPU cores visible: {os.cpu_count()}  (TensorFlow on CPU; numbers are for this machine only)\n")
    t0 = time.perf_counter()
    model = train_model(args.train_steps)
    print(f"model trained in {time.perf_counter() - t0:.0f} s (FlexUNet f8 k3 n4, 256² input)")
    tmp = Path(tempfile.mkdtemp(prefix="bench-infer-"))
    try:
        rng = np.random.default_rng(1)
        images, truths = [], []
        for i in range(args.images):
            image, mask = sample(rng, args.size, 24)
            write_png(tmp / "in" / f"img{i:03d}.png", image)
            images.append(image)
            truths.append(mask)
        run = tmp / "run"
        run.mkdir()
        model.save(run / "model.keras")
        palette = Palette.from_names(CLASSES)
        (tmp / "ds").mkdir()
        write_manifest(tmp / "ds" / "manifest.jsonl", [])
        write_info(tmp / "ds" / "dataset.json", new_info("bench", palette, {"format": "bench"}))
        config = config_from_dict(
            {
                "data": {"dataset": str(tmp / "ds"), "image_size": [256, 256]},
                "model": {"name": "flexunet", "base_filters": 8, "base_kernels": [3, 3], "num_layers": 4},
                "train": {"output_dir": str(run)},
                "infer": {"tiled": True, "tile": args.tile, "overlap": args.overlap},
            },
            path=tmp / "cfg.toml",
            base_dir=tmp,
        )
        starts = tile_starts(args.size, args.tile, args.overlap)
        tiles = [
            prepare_image(im[y : y + args.tile, x : x + args.tile], (256, 256), 3)
            for im in images
            for y in starts
            for x in starts
        ]
        batches = [np.stack(tiles[i : i + 4]) for i in range(0, len(tiles), 4)]
        predict_tiled(model, images[0], tile=args.tile, overlap=args.overlap)  # warm-up (trace, allocate)
        original_tiled(model, images[0], args.tile, args.overlap)

        def bare() -> float:
            t = time.perf_counter()
            for b in batches:
                np.asarray(model(b, training=False))
            return time.perf_counter() - t

        def pipeline() -> float:
            t = time.perf_counter()
            infer_segmentation(config, tmp / "in", tmp / "out", overwrite=True)
            return time.perf_counter() - t

        def peer() -> float:
            t = time.perf_counter()
            for i in range(args.images):
                original_tiled(model, read_image(tmp / "in" / f"img{i:03d}.png"), args.tile, args.overlap)
            return time.perf_counter() - t

        times: dict[str, list[float]] = {"bare": [], "pipeline": [], "peer": []}
        for _ in range(args.repeats):
            for name, fn in (("bare", bare), ("pipeline", pipeline), ("peer", peer)):
                times[name].append(fn())
        best = {k: min(v) for k, v in times.items()}
        n = args.images
        print(f"\n{n} images {args.size}², tile {args.tile}, overlap {args.overlap}: {len(tiles) // n} tiles/image\n")
        print("| method | images/s | seconds | × bare compute |")
        print("|---|---|---|---|")
        print(
            f"| bare model compute of the same tiles (batch 4, in memory) | {n / best['bare']:.2f} | "
            f"{best['bare']:.2f} | 1.00 |"
        )
        print(
            f"| `infer` pipeline (decode, Hann-blended tiles, colorize, overlay, regions, write) | "
            f"{n / best['pipeline']:.2f} | {best['pipeline']:.2f} | **{best['pipeline'] / best['bare']:.2f}** "
            "(goal ≤ 1.25) |"
        )
        print(
            f"| original's tiled method (resize padded tile, argmax, paste; compute only, no writes) | "
            f"{n / best['peer']:.2f} | {best['peer']:.2f} | {best['peer'] / best['bare']:.2f} |"
        )

        band = seam_band(args.size, args.tile)
        every = np.ones_like(band)
        ours = [read_image(tmp / "out" / "masks" / f"img{i:03d}.png") for i in range(n)]
        ours = [palette.decode(m) for m in ours]
        theirs = [original_tiled(model, im, args.tile, args.overlap) for im in images]
        print("\n| method | mean IoU within 8 px of the tile seams | mean IoU, whole image |")
        print("|---|---|---|")
        for name, preds in (("`infer` (Hann blending)", ours), ("original (no blending)", theirs)):
            seam = np.mean([mean_iou(t, p, band) for t, p in zip(truths, preds, strict=True)])
            whole = np.mean([mean_iou(t, p, every) for t, p in zip(truths, preds, strict=True)])
            print(f"| {name} | {seam:.4f} | {whole:.4f} |")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\ntotal bench time {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
