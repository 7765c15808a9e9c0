"""A trained detector = Keras model + thresholds: image in, anomaly score / map / mask / boxes out.

Used alike by threshold fitting (end of `train`), `evaluate` and `infer`, so the three agree.
Thresholds live in `thresholds.json` next to `model.keras`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from scipy import ndimage

from datatools.errors import InputError
from training.anomaly import heatmap as hm
from training.anomaly.patches import sliding_apply

THRESHOLDS_JSON = "thresholds.json"
MODEL_FILE = "model.keras"


@dataclass
class Detection:
    """What a detector says about one image, at the image's native resolution."""

    score: float  # image anomaly score (higher = more anomalous)
    heatmap: np.ndarray  # H×W float32 — raw anomaly map (ssim_ae) or normalised CAM in [0, 1]
    mask: np.ndarray | None = None  # H×W bool, pixels judged defective (needs a pixel threshold)
    boxes: list[tuple[int, int, int, int]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


def to_float(image: np.ndarray, size: tuple[int, int], channels: int) -> np.ndarray:
    """uint8 H×W(×3) → float32 size[0]×size[1]×channels in [0, 1] (bilinear resize, RGB→luminance)."""
    img = image
    if channels == 1 and img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    elif channels == 3 and img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    if img.shape[:2] != tuple(size):
        img = cv2.resize(img, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
    return (img.reshape(size[0], size[1], channels).astype(np.float32)) / 255.0


def disk(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def foreground(image_u8: np.ndarray, bg_mask: str) -> np.ndarray | None:
    """Object pixels on a plain backdrop (the port's rule): gray > 50 on black, < 200 on white, holes filled."""
    if bg_mask == "none":
        return None
    gray = cv2.cvtColor(image_u8, cv2.COLOR_RGB2GRAY) if image_u8.ndim == 3 else image_u8
    fg = gray > 50 if bg_mask == "black" else gray < 200
    return ndimage.binary_fill_holes(fg)


def read_thresholds(output_dir: Path) -> dict[str, Any]:
    path = Path(output_dir) / THRESHOLDS_JSON
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(
            "missing; train the model first (thresholds are written at the end of training)", str(path)
        ) from None
    except (OSError, json.JSONDecodeError) as e:
        raise InputError(f"unreadable thresholds: {e}", str(path)) from None


def load_keras_model(output_dir: Path) -> Any:
    import keras

    path = Path(output_dir) / MODEL_FILE
    if not path.is_file():
        raise InputError("no trained model here; run `defectkit train CONFIG` first", str(path))
    return keras.saving.load_model(str(path), compile=False, safe_mode=True)


class SSIMDetector:
    """Sliding-window reconstruction → 1 − SSIM (+ L1) map → opened score, binary mask and boxes."""

    def __init__(self, model: Any, config: Any, thresholds: dict[str, Any] | None = None):
        from training.models.ssim_ae import channels, work_size

        self.model = model
        m = config.model
        self.size = work_size(config)
        self.channels = channels(config)
        self.patch = int(m["patch_size"])
        self.stride = int(m["stride"])
        self.bg_mask = m["bg_mask"]
        self.radius = int(m["opening_radius"])
        self.min_area = int(config.infer.get("min_area", 1))
        self.batch = max(1, int(config.evaluation.get("batch_size") or config.train["batch_size"]))
        self.thresholds = thresholds or {}

    def reconstruct(self, x: np.ndarray) -> np.ndarray:
        def fn(batch: np.ndarray) -> np.ndarray:
            return np.asarray(self.model.predict_on_batch(batch))

        return sliding_apply(x, self.patch, self.stride, fn, batch_size=self.batch)

    def work_map(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(input, reconstruction, anomaly map) at the working size, before any threshold."""
        from training.anomaly.ssim import residual_map

        x = to_float(image, self.size, self.channels)
        rec = self.reconstruct(x)
        amap = residual_map(x, rec)
        u8 = np.round(x * 255.0).astype(np.uint8)
        fg = foreground(u8[..., 0] if self.channels == 1 else u8, self.bg_mask)
        if fg is not None:
            amap = amap * fg
        return x, rec, amap

    def image_score(self, amap: np.ndarray) -> float:
        """Max of the map after a grey opening: a peak must be as wide as the disk to count."""
        if self.radius:
            amap = cv2.morphologyEx(amap, cv2.MORPH_OPEN, disk(self.radius))
        return float(amap.max())

    def binary(self, amap: np.ndarray, threshold: float) -> np.ndarray:
        m = (amap > threshold).astype(np.uint8)
        if self.radius:
            m = cv2.morphologyEx(m, cv2.MORPH_OPEN, disk(self.radius))
        return m.astype(bool)

    def detect(self, image: np.ndarray) -> Detection:
        h, w = image.shape[:2]
        _, rec, amap = self.work_map(image)
        score = self.image_score(amap)
        mask = None
        box_list: list[tuple[int, int, int, int]] = []
        if "pixel" in self.thresholds:
            small = self.binary(amap, self.thresholds["pixel"]["value"])
            mask = cv2.resize(small.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
            box_list = hm.boxes(mask, self.min_area)
        native = cv2.resize(amap, (w, h), interpolation=cv2.INTER_LINEAR) if (h, w) != amap.shape else amap
        return Detection(score, native.astype(np.float32), mask, box_list, {"reconstruction": rec})


class CAMDetector:
    """Softmax anomaly probability + CAM heatmap of the anomaly class + one box per hot region."""

    def __init__(self, model: Any, config: Any, thresholds: dict[str, Any] | None = None):
        import keras

        from training.models.cam_classifier import DENSE_LAYER, FEATURES_LAYER

        self.model = model
        self.size = config.image_size
        self.backbone = config.model["backbone"]
        self.channels = int(model.inputs[0].shape[-1])
        self.heat_threshold = float(config.model["heatmap_threshold"])
        self.min_area = int(config.infer.get("min_area", 1))
        self.thresholds = thresholds or {}
        self.cam_model = keras.Model(model.inputs, [model.get_layer(FEATURES_LAYER).output, model.outputs[0]])
        kernel = model.get_layer(DENSE_LAYER).get_weights()[0]
        self.weights = kernel[:, 1]

    def preprocess(self, images: list[np.ndarray]) -> np.ndarray:
        batch = np.stack([to_float(im, self.size, self.channels) for im in images])
        return preprocess_batch(batch, self.backbone)

    def detect_batch(self, images: list[np.ndarray]) -> list[Detection]:
        feats, probs = self.cam_model.predict_on_batch(self.preprocess(images))
        feats, probs = np.asarray(feats), np.asarray(probs)
        out = []
        for image, f, p in zip(images, feats, probs, strict=True):
            heat = hm.cam(f, self.weights, image.shape[:2])
            box_list = hm.heatmap_boxes(heat, self.heat_threshold, self.min_area)
            out.append(Detection(float(p[1]), heat, heat > self.heat_threshold, box_list))
        return out

    def detect(self, image: np.ndarray) -> Detection:
        return self.detect_batch([image])[0]


def preprocess_batch(batch01: np.ndarray, backbone: str) -> np.ndarray:
    """Network input from [0, 1] RGB: VGG16's caffe preprocessing (BGR, ImageNet mean) or as is."""
    if backbone != "vgg16":
        return batch01.astype(np.float32)
    x = batch01[..., ::-1] * 255.0
    return (x - np.array([103.939, 116.779, 123.68], dtype=np.float32)).astype(np.float32)


def load_detector(config: Any, model_path: Path | None = None) -> SSIMDetector | CAMDetector:
    """The trained detector of `config` (model.keras + thresholds.json from its output_dir).

    `model_path`: another model file for the ssim_ae, e.g. its .onnx / .tflite export (`training.runtime`).
    The CAM classifier needs its feature maps as well as its output, so it runs its model.keras only.
    """
    out = Path(config.train["output_dir"])
    cam = config.model["name"] != "ssim_ae"
    if cam and model_path is not None and Path(model_path).suffix.lower() != ".keras":
        raise InputError(
            "the CAM heatmap needs the classifier's feature maps, which an export does not output; "
            "run cam_classifier with its model.keras (--model is for segmentation models and ssim_ae)",
            str(model_path),
        )
    thresholds = read_thresholds(out)
    if not cam:
        if model_path is None:
            return SSIMDetector(load_keras_model(out), config, thresholds)
        from training.runtime import open_runtime

        return SSIMDetector(open_runtime(Path(model_path), config), config, thresholds)
    if model_path is not None:
        import keras

        if not Path(model_path).is_file():
            raise InputError("model file not found", str(model_path))
        return CAMDetector(keras.saving.load_model(str(model_path), compile=False), config, thresholds)
    return CAMDetector(load_keras_model(out), config, thresholds)
