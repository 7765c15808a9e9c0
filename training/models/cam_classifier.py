"""Good/anomaly classifier with class-activation maps: boxes around defects from image labels only.

VGG16 convolutional features (keras.applications, up to conv5-3; `weights` = a local weights file or
none — nothing is ever downloaded) or a small CNN, then global average pooling and Dense(2, softmax).
Loss weights good 1 / anomaly 3 as in the original PyTorch project; optionally only the last N conv
layers train. The heatmap is the last conv maps weighted by the anomaly class's dense weights.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from datatools.errors import InputError
from training.models.spec import ModelSpec
from training.schema import Key, ModelConfig

BACKBONES = ("vgg16", "small_cnn")
FEATURES_LAYER = "cam_features"  # the GAP layer's input is the CAM feature map
GAP_LAYER = "cam_gap"
DENSE_LAYER = "cam_dense"

DEFAULTS: dict[str, Any] = {
    "backbone": Key("small_cnn", choices=BACKBONES, help="vgg16 (keras.applications) or a small CNN"),
    "weights": Key(kind="path", optional=True, help="local VGG16 no-top weights file (.h5); unset = random init"),
    "base_filters": Key(16, min=1, help="small_cnn: filters of the first block (doubles per block)"),
    "blocks": Key(4, min=1, max=6, help="small_cnn: conv blocks; the map is downsampled 2^(blocks−1)"),
    "batch_norm": Key(True, help="small_cnn: BatchNormalization after every conv (trains faster from scratch)"),
    "trainable_conv_layers": Key(-1, min=-1, help="train only the last N conv layers (+ the head); -1 = all"),
    "class_weights": Key([1.0, 3.0], length=2, min=0.0, help="loss weights of [good, anomaly]"),
    "heatmap_threshold": Key(0.7, min=0.0, max=1.0, help="normalised heat above this forms boxes"),
    "threshold_percentile": Key(
        99.0, min=0.0, max=100.0, help="anomaly-probability threshold when validation has no defects"
    ),
}

EXTRA_KEYS: dict[str, dict[str, Any]] = {
    "train": {
        "loss": Key("categorical_crossentropy", choices=("categorical_crossentropy",), help="class-weighted"),
        "p_hflip": Key(0.5, min=0.0, max=1.0),
        "p_vflip": Key(0.5, min=0.0, max=1.0),
    },
}


def validate(config: ModelConfig) -> list[str]:
    m = config.model
    h, w = config.image_size
    msgs = []
    if m["backbone"] == "vgg16" and min(h, w) < 32:
        msgs.append(f"[data] image_size {[h, w]}: vgg16 needs at least 32×32")
    if m["backbone"] == "vgg16" and int(config.data.get("channels", 3)) != 3:
        msgs.append("[data] channels must be 3 for vgg16")
    if m["weights"] and m["backbone"] != "vgg16":
        msgs.append("[model] weights is only used with backbone = 'vgg16'")
    if m["weights"] and not Path(m["weights"]).is_file():
        msgs.append(f"[model] weights: file not found: {m['weights']}")
    return msgs


def build_cam_classifier(
    image_size: tuple[int, int],
    channels: int = 3,
    *,
    backbone: str = "small_cnn",
    weights: str | Path | None = None,
    base_filters: int = 16,
    blocks: int = 4,
    batch_norm: bool = True,
    trainable_conv_layers: int = -1,
) -> Any:
    """Backbone → GAP → Dense(2, softmax); the last conv layer's output is what CAM weights."""
    import keras
    from keras import layers

    inputs = keras.Input((*image_size, channels), name="image")
    if backbone == "vgg16":
        base = keras.applications.VGG16(include_top=False, weights=None, input_shape=(*image_size, channels))
        if weights:
            try:
                base.load_weights(str(weights))
            except Exception as e:  # any h5 / layout problem → a message naming the file
                raise InputError(f"cannot load VGG16 weights: {e}", str(weights)) from None
        x = inputs
        for layer in base.layers[1:]:
            if layer.name == "block5_pool":  # CAM uses conv5-3 itself, before the last pooling
                break
            x = layer(x)
    elif backbone == "small_cnn":
        x = inputs
        for b in range(blocks):
            if b:
                x = layers.MaxPooling2D(2)(x)
            for j in range(2):
                x = layers.Conv2D(
                    base_filters * 2**b, 3, padding="same", use_bias=not batch_norm, name=f"conv{b + 1}_{j + 1}"
                )(x)
                if batch_norm:
                    # momentum 0.9, not Keras' 0.99: a short run has only a few hundred steps, and with 0.99
                    # the moving statistics that validation, thresholds and evaluation use stay near their
                    # initial values (mean 0, variance 1), so the model collapses to one class there.
                    x = layers.BatchNormalization(momentum=0.9, name=f"bn{b + 1}_{j + 1}")(x)
                x = layers.Activation("relu")(x)
    else:
        raise ValueError(f"unknown backbone {backbone!r}; valid: {', '.join(BACKBONES)}")
    x = layers.Activation("linear", name=FEATURES_LAYER)(x)
    pooled = layers.GlobalAveragePooling2D(name=GAP_LAYER)(x)
    outputs = layers.Dense(2, activation="softmax", dtype="float32", name=DENSE_LAYER)(pooled)
    model = keras.Model(inputs, outputs, name=f"cam_{backbone}")
    freeze_conv_layers(model, trainable_conv_layers)
    return model


def freeze_conv_layers(model: Any, trainable_last: int) -> None:
    """Freeze every conv layer except the last `trainable_last` ones (-1 leaves all trainable)."""
    import keras

    if trainable_last < 0:
        return
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    for i, layer in enumerate(convs):
        layer.trainable = i >= len(convs) - trainable_last


def build(config: ModelConfig, num_classes: int = 2) -> Any:
    """`num_classes` is ignored: the head is always good / anomaly."""
    m = config.model
    channels = 3 if m["backbone"] == "vgg16" else int(config.data.get("channels", 3))
    return build_cam_classifier(
        config.image_size,
        channels,
        backbone=m["backbone"],
        weights=m["weights"],
        base_filters=m["base_filters"],
        blocks=m["blocks"],
        batch_norm=m["batch_norm"],
        trainable_conv_layers=m["trainable_conv_layers"],
    )


SPEC = ModelSpec(
    name="cam_classifier",
    build=build,
    defaults=DEFAULTS,
    description="good/anomaly classifier (VGG16 or small CNN + GAP + Dense(2)) with CAM heatmaps and boxes",
    extra_keys=EXTRA_KEYS,
    validate=validate,
)
