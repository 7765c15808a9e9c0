"""defectkit data tools: palettes, source readers, rasterization, split, augmentation, manifests."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("defectkit")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
