"""SSIM autoencoder (Bergmann et al., 2019) as in its public TF 2.2 port: unsupervised defect segmentation.

Encoder: 4×4 stride-2 and 3×3 stride-1 convolutions with LeakyReLU 0.2 (filters f, 2f, 4f with
f = `base_filters` = 32), an 8×8 valid convolution to a 1×1×`z_dim` bottleneck; the decoder mirrors it
with transposed convolutions and ends in a sigmoid. A 256 patch gets one extra stride-2 stage on each
side. Trained only on good images (random patches), it reconstructs good texture well and defects
badly; the anomaly map is 1 − SSIM(image, reconstruction) (+ L1 for colour). See `training.anomaly`.
"""

from __future__ import annotations

from typing import Any

from training.models.spec import ModelSpec
from training.schema import Key, ModelConfig

PATCH_SIZES = (128, 256)
BG_MASKS = ("none", "black", "white")

DEFAULTS: dict[str, Any] = {
    "patch_size": Key(128, choices=PATCH_SIZES, help="training patch / sliding window side (256 adds a stage)"),
    "z_dim": Key(100, min=1, help="bottleneck size (the port: 100 for textures, 500 for objects)"),
    "base_filters": Key(32, min=1, help="filters of the first stage; 2× and 4× deeper (the port's flc)"),
    "im_resize": Key(
        kind="int",
        optional=True,
        min=8,
        help="resize images to im_resize² (the port's option); unset = data.image_size",
    ),
    "grayscale": Key(False, help="work on luminance (1 channel); also implied by data.channels = 1"),
    "stride": Key(32, min=1, help="sliding-window step at inference (≤ patch_size); overlaps are averaged"),
    "bg_mask": Key("none", choices=BG_MASKS, help="ignore a black/white background (objects on a plain backdrop)"),
    "opening_radius": Key(4, min=0, help="disk radius of the morphological opening of masks/scores; 0 = off"),
    "l1_weight": Key(1.0, min=0.0, help="weight of the L1 term of the ssim_l1 loss"),
    "threshold_percentile": Key(
        99.0, min=0.0, max=100.0, help="image threshold = this percentile of good validation scores (no defects there)"
    ),
    "pixel_percentile": Key(
        98.0, min=0.0, max=100.0, help="pixel threshold = this percentile of good validation pixels (no defect masks)"
    ),
}

EXTRA_KEYS: dict[str, dict[str, Any]] = {
    "train": {
        "loss": Key("ssim", choices=("ssim", "ssim_l1", "mse"), help="reconstruction loss"),
        "patches_per_epoch": Key(10000, min=1, help="random training patches per epoch (the port's augment_num)"),
        "patches_per_image": Key(8, min=1, help="patches cut from each decoded image in a batch"),
        "valid_patches": Key(256, min=1, help="fixed patches of good validation images for val_loss"),
        "p_hflip": Key(0.3, min=0.0, max=1.0),
        "p_vflip": Key(0.3, min=0.0, max=1.0),
        "p_rot90": Key(0.0, min=0.0, max=1.0, help="probability of a random 90° turn"),
        "rotate_degrees": Key(0.0, min=0.0, max=180.0, help="random rotation in [-deg, deg] (the port's angle_vari)"),
    },
}


def channels(config: ModelConfig) -> int:
    return 1 if config.model["grayscale"] or int(config.data.get("channels", 3)) == 1 else 3


def work_size(config: ModelConfig) -> tuple[int, int]:
    """(height, width) images are resized to before patching / sliding."""
    r = config.model["im_resize"]
    return (int(r), int(r)) if r else config.image_size


def validate(config: ModelConfig) -> list[str]:
    m = config.model
    h, w = work_size(config)
    msgs = []
    if min(h, w) < m["patch_size"]:
        what = f"im_resize {m['im_resize']}" if m["im_resize"] else f"data.image_size {[h, w]}"
        msgs.append(f"[model] {what} is smaller than patch_size {m['patch_size']}; images must hold one patch")
    if m["stride"] > m["patch_size"]:
        msgs.append(f"[model] stride {m['stride']} must be ≤ patch_size {m['patch_size']} (windows may not leave gaps)")
    return msgs


def build_ssim_ae(patch_size: int = 128, channels: int = 1, *, z_dim: int = 100, base_filters: int = 32) -> Any:
    """The port's autoencoder for `patch_size` (128 or 256) square patches of `channels` in [0, 1]."""
    import keras
    from keras import layers

    if patch_size not in PATCH_SIZES:
        raise ValueError(f"patch_size must be one of {PATCH_SIZES}, got {patch_size}")
    f = base_filters

    def conv(x: Any, filters: int, k: int, s: int) -> Any:
        x = layers.Conv2D(filters, k, strides=s, padding="same")(x)
        return layers.LeakyReLU(negative_slope=0.2)(x)

    def deconv(x: Any, filters: int, k: int, s: int, padding: str = "same") -> Any:
        x = layers.Conv2DTranspose(filters, k, strides=s, padding=padding)(x)
        return layers.LeakyReLU(negative_slope=0.2)(x)

    inputs = keras.Input((patch_size, patch_size, channels), name="patch")
    x = conv(inputs, f, 4, 2)
    x = conv(x, f, 4, 2)
    if patch_size == 256:
        x = conv(x, f, 4, 2)
    x = conv(x, f, 3, 1)
    x = conv(x, 2 * f, 4, 2)
    x = conv(x, 2 * f, 3, 1)
    x = conv(x, 4 * f, 4, 2)
    x = conv(x, 2 * f, 3, 1)
    x = conv(x, f, 3, 1)
    z = layers.Conv2D(z_dim, 8, strides=1, padding="valid", name="bottleneck")(x)
    x = deconv(z, f, 8, 1, padding="valid")
    x = conv(x, 2 * f, 3, 1)
    x = conv(x, 4 * f, 3, 1)
    x = deconv(x, 2 * f, 4, 2)
    x = conv(x, 2 * f, 3, 1)
    x = deconv(x, f, 4, 2)
    x = conv(x, f, 3, 1)
    x = deconv(x, f, 4, 2)
    if patch_size == 256:
        x = deconv(x, f, 4, 2)
    outputs = layers.Conv2DTranspose(
        channels, 4, strides=2, padding="same", activation="sigmoid", dtype="float32", name="reconstruction"
    )(x)
    return keras.Model(inputs, outputs, name=f"ssim_ae_{patch_size}")


def build(config: ModelConfig, num_classes: int = 0) -> Any:
    """`num_classes` is ignored: the autoencoder reconstructs its input."""
    m = config.model
    return build_ssim_ae(m["patch_size"], channels(config), z_dim=m["z_dim"], base_filters=m["base_filters"])


SPEC = ModelSpec(
    name="ssim_ae",
    build=build,
    defaults=DEFAULTS,
    description="SSIM autoencoder: unsupervised defect segmentation from good images only (Bergmann et al. 2019)",
    extra_keys=EXTRA_KEYS,
    validate=validate,
)
