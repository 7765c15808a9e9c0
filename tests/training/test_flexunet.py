"""FlexUNet architecture: parameter counts against an independent formula, the PanNuke fidelity check."""

from __future__ import annotations

import pytest

from training.models.flexunet import build_flexunet, level_kernels


def expected_params(c: int, k: int, f: int, kernel: int, n: int, bn: bool = False) -> int:
    """Parameter count of the FlexUNet described in the issue, computed by hand."""
    total = 0
    kernels = [max(3, kernel - 2 * i) for i in range(n)]
    cin = c
    for i in range(n):
        fi = f * 2**i
        ks = kernels[i] ** 2
        total += ks * cin * fi + fi + ks * fi * fi + fi + (4 * fi * 2 if bn else 0)
        cin = fi
    for level in range(n - 2, -1, -1):
        fl = f * 2**level
        total += 4 * cin * fl + fl  # transposed 2×2
        ks = kernels[level] ** 2
        total += ks * (2 * fl) * fl + fl + ks * fl * fl + fl + (4 * fl * 2 if bn else 0)
        cin = fl
    return total + cin * k + k


def test_pannuke_configuration_has_the_original_parameter_count() -> None:
    model = build_flexunet((512, 512), 3, 6, base_filters=16, base_kernels=(9, 9), num_layers=8, normalization=False)
    assert model.count_params() == 124_996_934
    assert expected_params(3, 6, 16, 9, 8) == 124_996_934


@pytest.mark.parametrize(
    ("size", "c", "k", "f", "kernel", "n", "bn"),
    [
        ((64, 96), 3, 4, 8, 7, 4, False),
        ((32, 32), 1, 2, 4, 3, 3, True),
        ((128, 64), 3, 6, 16, 9, 6, False),
    ],
)
def test_shapes_and_parameter_counts(size, c, k, f, kernel, n, bn) -> None:
    model = build_flexunet(size, c, k, base_filters=f, base_kernels=(kernel, kernel), num_layers=n, normalization=bn)
    assert model.input_shape == (None, size[0], size[1], c)
    assert model.output_shape == (None, size[0], size[1], k)
    assert model.count_params() == expected_params(c, k, f, kernel, n, bn)


def test_kernels_shrink_and_softmax_sums_to_one() -> None:
    import numpy as np

    assert level_kernels((9, 7), 5) == [(9, 7), (7, 5), (5, 3), (3, 3), (3, 3)]
    model = build_flexunet((32, 32), 3, 3, base_filters=4, base_kernels=(3, 3), num_layers=3, dilation=(3, 3))
    out = np.asarray(model(np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")))
    np.testing.assert_allclose(out.sum(-1), 1.0, rtol=1e-5)


def test_bad_image_size_is_rejected_with_working_sizes() -> None:
    with pytest.raises(ValueError, match=r"multiples of 2\^3 = 8 \(30 → 24 or 32\)"):
        build_flexunet((30, 32), 3, 2, num_layers=4)


def test_decoder_dilations_mirror_the_encoder_as_in_the_original() -> None:
    """The original: dilations = [(d,d), (d-1,d-1), … ≥ 1] per encoder level, decoder step i uses
    dilations[::-1][1:][i] in both of its convolutions; the final 1×1 convolution is undilated."""
    from keras import layers

    model = build_flexunet((128, 128), 3, 3, base_filters=1, base_kernels=(3, 3), num_layers=8, dilation=(3, 3))
    got = [tuple(layer.dilation_rate) for layer in model.layers if type(layer) is layers.Conv2D]
    encoder = [(3, 3)] * 2 + [(2, 2)] * 2 + [(1, 1)] * 12  # levels 0 … 7 (7 = bridge), two convolutions each
    decoder = [(1, 1)] * 10 + [(2, 2)] * 2 + [(3, 3)] * 2  # levels 6 … 0, two convolutions each
    assert got == encoder + decoder + [(1, 1)]
    assert not any(
        tuple(layer.dilation_rate) != (1, 1) for layer in model.layers if isinstance(layer, layers.Conv2DTranspose)
    )
