"""`defectkit stats`: samples and pixel share per class and split."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from datatools.dataset import SPLITS, Dataset


def dataset_stats(ds: Dataset) -> dict[str, Any]:
    """{split: {"samples", "pixels", "classes": {name: {"samples", "pixels", "share"}}}} incl. "all"."""
    order = [s for s in SPLITS if any(r["split"] == s for r in ds.rows)]
    if any(r["split"] is None for r in ds.rows):
        order.append("unsplit")
    order.append("all")
    out: dict[str, Any] = {}
    for split in order:
        rows = [
            r for r in ds.rows if split == "all" or r["split"] == split or (split == "unsplit" and r["split"] is None)
        ]
        total = sum(r["width"] * r["height"] for r in rows)
        samples: dict[str, int] = defaultdict(int)
        pixels: dict[str, int] = defaultdict(int)
        for r in rows:
            for name, n in r["classes"].items():
                samples[name] += 1
                pixels[name] += n
        defect_pixels = sum(pixels.values())
        classes = {"background": {"samples": len(rows), "pixels": total - defect_pixels}}
        for name in ds.palette.defect_names:
            classes[name] = {"samples": samples[name], "pixels": pixels[name]}
        for c in classes.values():
            c["share"] = c["pixels"] / total if total else 0.0
        out[split] = {
            "samples": len(rows),
            "groups": len({r["group"] for r in rows}),
            "good": sum(1 for r in rows if not r["classes"]),
            "pixels": total,
            "classes": classes,
        }
    return out


def format_stats(stats: dict[str, Any]) -> str:
    """A plain-text table: one row per class, per split columns 'samples / pixel share'."""
    splits = list(stats)
    names = list(next(iter(stats.values()))["classes"]) if stats else []
    header = ["class", *splits]
    lines = [["samples (groups)", *(f"{stats[s]['samples']} ({stats[s]['groups']})" for s in splits)]]
    lines.append(["good samples", *(str(stats[s]["good"]) for s in splits)])
    for name in names:
        cells = []
        for s in splits:
            c = stats[s]["classes"][name]
            cells.append(f"{c['samples']} / {100 * c['share']:.3f}%")
        lines.append([name, *cells])
    widths = [max(len(str(x)) for x in col) for col in zip(header, *lines, strict=True)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    rule = "  ".join("-" * w for w in widths)
    body = [fmt.format(*header), rule, *(fmt.format(*row) for row in lines)]
    return "\n".join(body) + "\n(cells: samples containing the class / share of all pixels)"
