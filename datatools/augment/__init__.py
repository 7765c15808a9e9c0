"""Offline augmentation: pure `(image, mask, *, params, rng) -> (image, mask)` ops, a registry, TOML recipes
and the dataset-level engine behind `defectkit augment`.

Geometric ops move image (bilinear) and mask (nearest neighbour) with one mapping, so masks keep exact
class indices; photometric ops change the image only.
"""

from datatools.augment.distort import barrel, distort, pincushion
from datatools.augment.elastic import (
    displacement_std,
    elastic,
    elastic_maps,
    equivalent_alpha,
    original_displacement_std,
)
from datatools.augment.engine import AugmentReport, augment_dataset, plan, regenerate
from datatools.augment.geometric import hflip, rotate, shear, shrink, vflip
from datatools.augment.photometric import blur, brightness, noise
from datatools.augment.recipe import Recipe, derive_seed, load_recipe, parse_recipe
from datatools.augment.registry import REGISTRY, OpSpec, apply_aug, apply_op, get_op, op_names

__all__ = [
    "REGISTRY",
    "AugmentReport",
    "OpSpec",
    "Recipe",
    "apply_aug",
    "apply_op",
    "augment_dataset",
    "barrel",
    "blur",
    "brightness",
    "derive_seed",
    "displacement_std",
    "distort",
    "elastic",
    "elastic_maps",
    "equivalent_alpha",
    "get_op",
    "hflip",
    "load_recipe",
    "noise",
    "op_names",
    "original_displacement_std",
    "parse_recipe",
    "pincushion",
    "plan",
    "regenerate",
    "rotate",
    "shear",
    "shrink",
    "vflip",
]
