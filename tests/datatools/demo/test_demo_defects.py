"""Property tests over every defect function: pure, deterministic, visible, pixel-exact masks."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datatools.demo.defects import COVERAGE_THRESHOLD, DEFECTS, apply_defect, get_defect
from datatools.demo.textures import TEXTURES, load_texture, sample_texture


@settings(max_examples=12, deadline=None)
@given(
    name=st.sampled_from(sorted(DEFECTS)),
    seed=st.integers(0, 2**32 - 1),
    size=st.sampled_from([64, 96, 256]),
    gray=st.booleans(),
)
def test_defect_properties(name: str, seed: int, size: int, gray: bool) -> None:
    image = sample_texture(np.random.default_rng(seed), size, color=not gray)
    before = image.copy()
    out, mask = apply_defect(name, image, np.random.default_rng(seed + 1))
    again, mask2 = apply_defect(name, image, np.random.default_rng(seed + 1))

    assert np.array_equal(image, before), "the input image must not be modified"
    assert out.shape == image.shape and out.dtype == np.uint8
    assert mask.shape == image.shape[:2] and mask.dtype == bool
    assert np.array_equal(out, again) and np.array_equal(mask, mask2), "same rng state must give the same defect"
    assert 0 < mask.sum() < mask.size // 4, "a defect is a non-empty, local region"

    change = np.abs(out.astype(np.int16) - image.astype(np.int16))
    change = change.max(axis=2) if change.ndim == 3 else change
    # Visible: the defect pixels changed clearly, on average, and the mask is where the change is.
    assert change[mask].mean() >= 15
    ring = cv2.dilate(mask.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool) & ~mask
    assert change[mask].mean() > 2.5 * change[~mask].mean()
    assert change[ring].mean() < change[mask].mean()
    # Nothing changes far from the mask (the soft fringe is a few pixels wide).
    far = ~cv2.dilate(mask.astype(np.uint8), np.ones((31, 31), np.uint8)).astype(bool)
    assert change[far].max() <= 1


def test_visible_in_intensity() -> None:
    """Mean intensity inside each defect's mask differs from its surroundings (the defect is seen)."""
    for name in DEFECTS:
        for seed in range(5):
            rng = np.random.default_rng(seed)
            image, mask = apply_defect(name, sample_texture(rng, 128), rng)
            gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(float)
            around = cv2.dilate(mask.astype(np.uint8), np.ones((11, 11), np.uint8)).astype(bool) & ~mask
            assert abs(gray[mask].mean() - gray[around].mean()) > 8, (name, seed)


def test_registry_lists_valid_names() -> None:
    assert set(DEFECTS) >= {"scratch", "crack", "stain", "poke", "cut"}
    assert get_defect("crack") is DEFECTS["crack"]
    with pytest.raises(ValueError, match="valid names: crack, cut, poke, scratch, stain"):
        get_defect("dent")
    assert 0 < COVERAGE_THRESHOLD < 1


def test_textures_are_the_real_photographs() -> None:
    for name in TEXTURES:
        tex = load_texture(name)
        assert tex.shape == (512, 512) and tex.dtype == np.uint8 and tex.std() > 20
    rng = np.random.default_rng(0)
    a, b = sample_texture(rng, (48, 80)), sample_texture(rng, (48, 80))
    assert a.shape == (48, 80, 3) and not np.array_equal(a, b)
    with pytest.raises(ValueError, match="valid names"):
        load_texture("marble")
