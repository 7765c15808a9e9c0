"""FlexUNet: the original TensorFlowFlexUNet architecture, rebuilt with Keras 3 layers only.

With n = num_layers, k = base_kernels, d = dilation, f = base_filters, encoder level i uses two
convolutions of f·2^i filters, kernel max(3, k−2i), dilation max(1, d−i), dropout rate·i between
them and a 2×2 max-pool except at the bridge; the decoder mirrors it with 2×2 transposed
convolutions and skip concatenation, its level-i convolutions using level i's kernel and dilation
(the original's `kernel_sizes[::-1][1:]` and `dilations[::-1][1:]`), ending in a 1×1 softmax over
the dataset's classes.
Same parameter count as the original (the PanNuke configuration has 124,996,934).
"""

from __future__ import annotations

from typing import Any

from training.models.spec import ModelSpec
from training.schema import Key, ModelConfig

DEFAULTS: dict[str, Any] = {
    "base_filters": Key(16, min=1, help="filters of the first encoder level; doubles per level"),
    "base_kernels": Key([9, 9], length=2, min=1, help="kernel of the first level; shrinks by 2 per level, ≥ 3"),
    "num_layers": Key(6, min=2, max=12, help="encoder levels including the bridge"),
    "dropout_rate": Key(0.05, min=0.0, max=0.99, help="dropout at level i is dropout_rate·i"),
    "dilation": Key([1, 1], length=2, min=1, help="dilation of the first level; shrinks by 1 per level, ≥ 1"),
    "normalization": Key(False, help="BatchNormalization after every convolution"),
    "activation": Key("relu", choices=("relu", "elu", "gelu", "swish", "leaky_relu", "selu")),
    "input_normalize": Key(True, help="scale input pixels by 1/255 inside the model"),
}


def level_kernels(base_kernels: tuple[int, int] | list[int], num_layers: int) -> list[tuple[int, int]]:
    """Kernel size of each encoder level: max(3, k − 2i)."""
    return [tuple(max(3, int(k) - 2 * i) for k in base_kernels) for i in range(num_layers)]  # type: ignore[misc]


def level_dilations(dilation: tuple[int, int] | list[int], num_layers: int) -> list[tuple[int, int]]:
    """Dilation of each encoder level: max(1, d − i)."""
    return [tuple(max(1, int(d) - i) for d in dilation) for i in range(num_layers)]  # type: ignore[misc]


def size_problems(image_size: tuple[int, int] | list[int], num_layers: int) -> list[str]:
    """Messages for image sides the network cannot take (each must be a multiple of 2^(n−1))."""
    m = 2 ** (num_layers - 1)
    bad = [s for s in image_size if int(s) % m]
    if not bad:
        return []
    hints = ", ".join(f"{s} → {max(m, s // m * m)} or {(s // m + 1) * m}" for s in bad)
    return [
        f"[data] image_size {list(image_size)}: with num_layers = {num_layers} both sides must be multiples of "
        f"2^{num_layers - 1} = {m} ({hints}); or lower num_layers"
    ]


def validate(config: ModelConfig) -> list[str]:
    return size_problems(config.image_size, int(config.model["num_layers"]))


def build_flexunet(
    image_size: tuple[int, int],
    channels: int,
    num_classes: int,
    *,
    base_filters: int = 16,
    base_kernels: tuple[int, int] = (9, 9),
    num_layers: int = 6,
    dropout_rate: float = 0.05,
    dilation: tuple[int, int] = (1, 1),
    normalization: bool = False,
    activation: str = "relu",
    input_normalize: bool = True,
    name: str = "flexunet",
) -> Any:
    """The FlexUNet as a functional `keras.Model` (raises ValueError for unusable image sizes)."""
    import keras
    from keras import layers

    msgs = size_problems(image_size, num_layers)
    if msgs:
        raise ValueError(msgs[0])
    if num_classes < 2:
        raise ValueError(f"num_classes must be ≥ 2 (background + at least one class), got {num_classes}")
    kernels = level_kernels(base_kernels, num_layers)
    dilations = level_dilations(dilation, num_layers)

    def conv(x: Any, filters: int, kernel: tuple[int, int], dil: tuple[int, int]) -> Any:
        x = layers.Conv2D(
            filters, kernel, dilation_rate=dil, padding="same", kernel_initializer="he_normal", activation=activation
        )(x)
        if normalization:
            x = layers.BatchNormalization()(x)
        return x

    inputs = keras.Input(shape=(int(image_size[0]), int(image_size[1]), channels), name="image")
    x = layers.Rescaling(1.0 / 255.0)(inputs) if input_normalize else inputs
    skips = []
    for i in range(num_layers):
        filters = base_filters * 2**i
        x = conv(x, filters, kernels[i], dilations[i])
        x = layers.Dropout(dropout_rate * i)(x)
        x = conv(x, filters, kernels[i], dilations[i])
        if i < num_layers - 1:
            skips.append(x)
            x = layers.MaxPooling2D(2)(x)
    decoder_kernels = kernels[::-1][1:]  # levels n−2 … 0
    decoder_dilations = dilations[::-1][1:]  # as the original: the encoder's, reversed, bridge dropped
    for j, level in enumerate(range(num_layers - 2, -1, -1)):
        filters = base_filters * 2**level
        x = layers.Conv2DTranspose(filters, 2, strides=2, padding="same")(x)
        x = layers.Concatenate()([x, skips[level]])
        x = conv(x, filters, decoder_kernels[j], decoder_dilations[j])
        x = layers.Dropout(dropout_rate * level)(x)
        x = conv(x, filters, decoder_kernels[j], decoder_dilations[j])
    outputs = layers.Conv2D(num_classes, 1, activation="softmax", dtype="float32", name="probabilities")(x)
    return keras.Model(inputs, outputs, name=name)


def build(config: ModelConfig, num_classes: int) -> Any:
    m = config.model
    return build_flexunet(
        config.image_size,
        int(config.data["channels"]),
        num_classes,
        base_filters=m["base_filters"],
        base_kernels=tuple(m["base_kernels"]),
        num_layers=m["num_layers"],
        dropout_rate=m["dropout_rate"],
        dilation=tuple(m["dilation"]),
        normalization=m["normalization"],
        activation=m["activation"],
        input_normalize=m["input_normalize"],
    )


SPEC = ModelSpec(
    name="flexunet",
    build=build,
    defaults=DEFAULTS,
    description="FlexUNet multiclass segmentation (encoder-decoder with skips, softmax over dataset classes)",
    validate=validate,
)
