"""Build `report.html` for a training run directory.

The run directory is what `defectkit train` / `evaluate` write (see DESIGN.md): `config.toml`
(resolved, `[data].dataset` points at the dataset), `history.csv`, `evaluation.json`, `model.keras`
and `epoch_NNN/<sample>.png` prediction strips. Every piece is optional: a missing or unreadable one
becomes a "not available" note in its section, never a crash.

The report folder is self-contained: `report.html` plus `assets/` holding every picture it shows
(copied, downscaled or plotted), referenced by relative paths, so it can be zipped or served as is.
"""

from __future__ import annotations

import csv
import html
import json
import math
import re
import shutil
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from datatools import __version__
from datatools.errors import InputError
from datatools.files import atomic_dir, read_image, write_png

REPORT_HTML = "report.html"
ASSETS = "assets"
MAX_SIDE = 384  # pictures are downscaled to at most this many pixels per side
MAX_STRIP_EPOCHS = 6
EPOCH_DIR = re.compile(r"^epoch_(\d+)$")
RUN_FILES = ("config.toml", "history.csv", "evaluation.json", "model.keras")


@dataclass
class Piece:
    """A loaded part of the run, or why it is not available."""

    value: Any = None
    note: str = ""

    @property
    def ok(self) -> bool:
        return self.value is not None


@dataclass
class Run:
    root: Path
    config: Piece = field(default_factory=Piece)
    history: Piece = field(default_factory=Piece)
    evaluation: Piece = field(default_factory=Piece)
    dataset: Piece = field(default_factory=Piece)
    strips: dict[int, list[Path]] = field(default_factory=dict)


# --- loading -------------------------------------------------------------------------------------------
def load_config(path: Path) -> Piece:
    if not path.is_file():
        return Piece(note=f"{path.name} not found")
    try:
        return Piece(tomllib.loads(path.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        return Piece(note=f"{path.name} is not valid TOML: {e}")


def load_history(path: Path) -> Piece:
    """history.csv → {column: [float, ...]} (non-numeric cells become NaN)."""
    if not path.is_file():
        return Piece(note=f"{path.name} not found")
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        return Piece(note=f"cannot read {path.name}: {e}")
    if not rows:
        return Piece(note=f"{path.name} has no epochs yet")

    def num(v: str | None) -> float:
        try:
            return float(v) if v not in (None, "") else math.nan
        except ValueError:
            return math.nan

    columns = [c for c in rows[0] if c]
    return Piece({c: [num(r.get(c)) for r in rows] for c in columns})


def load_evaluation(path: Path) -> Piece:
    if not path.is_file():
        return Piece(note=f"{path.name} not found (run `defectkit evaluate CONFIG`)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        return Piece(note=f"{path.name} is not valid JSON: {e}")
    if not isinstance(data, dict):
        return Piece(note=f"{path.name}: expected a JSON object")
    return Piece(data)


def dataset_path(run_dir: Path, config: Mapping[str, Any] | None) -> Path | None:
    """`[data].dataset` of the run's config; a relative path resolves against the run directory."""
    if not config:
        return None
    value = (config.get("data") or {}).get("dataset")
    if not isinstance(value, str) or not value:
        return None
    p = Path(value)
    return p if p.is_absolute() else run_dir / p


def load_dataset(path: Path | None) -> Piece:
    from datatools.dataset import Dataset

    if path is None:
        return Piece(note="the run's config.toml does not name a dataset ([data].dataset)")
    try:
        return Piece(Dataset.load(path))
    except InputError as e:
        return Piece(note="; ".join(str(p) for p in e.problems))


def find_strips(run_dir: Path, exclude: Path | None = None) -> dict[int, list[Path]]:
    """{epoch: [strip PNGs]} from every `epoch_NNN/` folder under the run directory."""
    found: dict[int, list[Path]] = {}
    for d in sorted(run_dir.rglob("epoch_*")):
        m = EPOCH_DIR.match(d.name)
        if not m or not d.is_dir() or (exclude is not None and d.resolve().is_relative_to(exclude.resolve())):
            continue
        pngs = sorted(p for p in d.iterdir() if p.suffix.lower() == ".png")
        if pngs:
            found.setdefault(int(m.group(1)), []).extend(pngs)
    return dict(sorted(found.items()))


def load_run(run_dir: Path, exclude: Path | None = None) -> Run:
    run = Run(root=run_dir)
    run.config = load_config(run_dir / "config.toml")
    run.history = load_history(run_dir / "history.csv")
    run.evaluation = load_evaluation(run_dir / "evaluation.json")
    run.dataset = load_dataset(dataset_path(run_dir, run.config.value))
    if not run.config.ok:
        run.dataset.note = f"no usable config.toml ({run.config.note})"
    run.strips = find_strips(run_dir, exclude)
    return run


# --- numbers -------------------------------------------------------------------------------------------
def fmt(value: Any, digits: int = 4) -> str:
    """Scores as fixed decimals ("0.8123"); None/NaN as an en dash."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return "–" if math.isnan(value) else f"{value:.{digits}f}"
    return str(value)


def split_stats(rows: Sequence[Mapping[str, Any]], class_names: Sequence[str]) -> list[dict[str, Any]]:
    """Per split (and "all"): samples, good/defective, augmented copies, groups, per-class images and pixel share."""
    splits: dict[str, list[Mapping[str, Any]]] = {}
    for r in rows:
        splits.setdefault(str(r.get("split")), []).append(r)
    order = [s for s in ("train", "valid", "test") if s in splits] + sorted(set(splits) - {"train", "valid", "test"})
    out = []
    for name, group in [*((s, splits[s]) for s in order), ("all", list(rows))]:
        pixels = sum(int(r.get("width") or 0) * int(r.get("height") or 0) for r in group)
        per_class = {}
        for c in class_names:
            counts = [int((r.get("classes") or {}).get(c, 0)) for r in group]
            per_class[c] = {
                "images": sum(1 for n in counts if n > 0),
                "share": (sum(counts) / pixels) if pixels else None,
            }
        out.append(
            {
                "split": "none (not split)" if name == "None" else name,
                "samples": len(group),
                "good": sum(1 for r in group if r.get("label") == "good"),
                "augmented": sum(1 for r in group if r.get("parent") is not None),
                "groups": len({r.get("group") for r in group}),
                "classes": per_class,
            }
        )
    return out


# --- pictures ------------------------------------------------------------------------------------------
def safe_name(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)


def _downscale(img: np.ndarray, nearest: bool) -> np.ndarray:
    h, w = img.shape[:2]
    scale = MAX_SIDE / max(h, w)
    if scale >= 1.0:
        return img
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(img, size, interpolation=cv2.INTER_NEAREST if nearest else cv2.INTER_AREA)


def pick_samples(rows: Sequence[Mapping[str, Any]], n: int, class_names: Sequence[str]) -> list[Mapping[str, Any]]:
    """Up to n original rows: one per defect class (palette order), one good row, then the rest by id."""
    rows = sorted((r for r in rows if r.get("parent") is None), key=lambda r: r["id"])
    chosen: list[Mapping[str, Any]] = []
    for c in class_names[1:]:
        for r in rows:
            if (r.get("classes") or {}).get(c) and r not in chosen:
                chosen.append(r)
                break
    good = next((r for r in rows if r.get("label") == "good" and r not in chosen), None)
    if good is not None:
        chosen.append(good)
    chosen = chosen[:n]
    for r in rows:
        if len(chosen) >= n:
            break
        if r not in chosen:
            chosen.append(r)
    return sorted(chosen, key=lambda r: r["id"])


def predict_masks(model_path: Path, images: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Class-index predictions at each image's native size with the run's model (TensorFlow imported here).

    Uses the trainer's own loader and `predict_plain` (image resized to the model input, probabilities
    resized back, argmax), i.e. the predictions `defectkit evaluate` scores.
    """
    from training.config import load_config
    from training.runs import load_model
    from training.segmentation.infer import predict_plain

    try:
        config = load_config(model_path.parent / "config.toml")
    except Exception:  # an unreadable config only costs the model-specific custom objects
        config = None
    model = load_model(model_path, config)
    return [np.argmax(predict_plain(model, img), axis=-1).astype(np.uint8) for img in images]


# --- HTML ----------------------------------------------------------------------------------------------
def esc(x: Any) -> str:
    return html.escape(str(x), quote=True)


def na(reason: str) -> str:
    return f'<p class="na">Not available: {esc(reason)}</p>'


def swatch(color: Sequence[int]) -> str:
    r, g, b = (int(v) for v in color)
    return f'<span class="sw" style="background:rgb({r},{g},{b})"></span>'


def table(head: Sequence[str], body: Sequence[Sequence[str]], cls: str = "") -> str:
    """Cells are already HTML."""
    h = "".join(f"<th>{c}</th>" for c in head)
    b = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in body)
    return f'<table class="{cls}"><thead><tr>{h}</tr></thead><tbody>{b}</tbody></table>'


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1d2330;background:#f5f6f8}
header{background:#1d2330;color:#fff;padding:18px 28px}
header h1{margin:0 0 4px;font-size:22px}
header p{margin:0;color:#b8c0d0;font-size:13px}
main{padding:8px 28px 40px;max-width:1400px}
section{background:#fff;border-radius:8px;padding:14px 20px;margin:16px 0;box-shadow:0 1px 3px #0002}
h2{font-size:18px;margin:4px 0 12px}
section img{max-width:100%;height:auto}
table{border-collapse:collapse;font-size:13px;margin:6px 0}
th,td{border:1px solid #d8dce3;padding:4px 9px;text-align:right}
th{background:#eef0f4}
td:first-child,th:first-child{text-align:left}
.na{color:#9a3412;background:#fff7ed;padding:8px 12px;border-radius:6px}
.cards{display:flex;gap:14px;flex-wrap:wrap}
.card{background:#eef2ff;border-radius:8px;padding:10px 16px;min-width:140px}
.card b{display:block;font-size:22px}
.card span{font-size:12px;color:#4b5563}
.sw{display:inline-block;width:12px;height:12px;border:1px solid #0004;margin-right:6px;vertical-align:-1px}
.grid{display:grid;grid-template-columns:minmax(110px,190px) repeat(3,minmax(120px,256px))}
.grid{gap:6px 10px;align-items:center;font-size:12px}
.grid img,.strips img,.gallery img{width:100%;image-rendering:pixelated;border:1px solid #ccd}
.grid .hd{font-weight:600;text-align:center}
.strips figure,.gallery figure{margin:0 0 10px}
.strips figcaption,.gallery figcaption{font-size:12px;color:#4b5563}
.strips .row{display:flex;gap:8px;overflow-x:auto}
.strips .row figure{min-width:260px;max-width:420px}
.gallery{display:grid;grid-template-columns:repeat(auto-fill,minmax(360px,1fr));gap:10px}
.pair{display:flex;gap:4px}
.pair img{width:50%}
pre{background:#f3f4f6;padding:10px;border-radius:6px;font-size:12px;overflow-x:auto}
.cm td{text-align:right}
"""

# Sets <html data-images="loaded|failed"> once every picture has decoded (used by the browser test).
JS = """
(function(){
  function check(){
    var imgs=Array.prototype.slice.call(document.images);
    var bad=imgs.filter(function(i){return !(i.complete && i.naturalWidth>0);});
    document.documentElement.setAttribute('data-images', bad.length ? 'failed' : 'loaded');
    document.documentElement.setAttribute('data-images-count', String(imgs.length));
    var srcs=bad.map(function(i){return i.getAttribute('src');});
    document.documentElement.setAttribute('data-images-bad', srcs.join(' '));
  }
  window.addEventListener('load', check);
})();
"""


class ReportWriter:
    """Collects sections and assets inside a temporary report folder."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.assets = folder / ASSETS
        self.assets.mkdir(parents=True, exist_ok=True)
        self.sections: list[str] = []
        self.notes: list[str] = []

    def section(self, title: str, body: str, anchor: str) -> None:
        self.sections.append(f'<section id="{anchor}"><h2>{esc(title)}</h2>{body}</section>')

    def image(self, name: str, img: np.ndarray, *, nearest: bool = False) -> str:
        write_png(self.assets / name, _downscale(img, nearest))
        return f"{ASSETS}/{name}"

    def copy(self, name: str, src: Path) -> str:
        shutil.copyfile(src, self.assets / name)
        return f"{ASSETS}/{name}"

    def img_tag(self, src: str, alt: str) -> str:
        return f'<img src="{esc(src)}" alt="{esc(alt)}" loading="eager">'


def render_header_cards(run: Run) -> str:
    cards = []
    ev = run.evaluation.value or {}
    if run.evaluation.ok:
        cards.append(("mean IoU (defect classes)", fmt(ev.get("mean_iou"))))
        cards.append(("pixel accuracy", fmt(ev.get("pixel_accuracy"))))
        if ev.get("split"):
            cards.append(("evaluated split", esc(ev["split"])))
    hist = run.history.value
    if hist:
        n = len(next(iter(hist.values())))
        cards.append(("epochs run", str(n)))
        if "val_loss" in hist:
            vals = np.asarray(hist["val_loss"], float)
            if np.isfinite(vals).any():
                cards.append(("best val_loss", fmt(float(np.nanmin(vals)))))
    if not cards:
        return ""
    return (
        '<div class="cards">'
        + "".join(f"<div class=card><b>{v}</b><span>{esc(k)}</span></div>" for k, v in cards)
        + "</div>"
    )


def render_config(run: Run) -> str:
    if not run.config.ok:
        return na(run.config.note)
    cfg = run.config.value
    rows = []
    for sec in ("data", "model", "train"):
        for k, v in (cfg.get(sec) or {}).items():
            rows.append([esc(f"{sec}.{k}"), esc(json.dumps(v) if not isinstance(v, str) else v)])
    return (
        f"<details><summary>{len(rows)} settings (resolved config.toml)</summary>"
        + table(["key", "value"], rows)
        + "</details>"
    )


def render_dataset(run: Run) -> str:
    if not run.dataset.ok:
        return na(run.dataset.note)
    ds = run.dataset.value
    pal = ds.palette
    defects = list(pal.names[1:])
    stats = split_stats(ds.rows, defects)
    head = ["split", "samples", "good", "augmented", "groups"]
    head += [f"{swatch(c.color)}{esc(c.name)}<br><small>images / pixel %</small>" for c in pal.classes[1:]]
    body = []
    for s in stats:
        row = [esc(s["split"]), fmt(s["samples"]), fmt(s["good"]), fmt(s["augmented"]), fmt(s["groups"])]
        for c in defects:
            pc = s["classes"][c]
            share = "–" if pc["share"] is None else f"{100 * pc['share']:.3f}"
            row.append(f"{fmt(pc['images'])} / {share}")
        body.append(row)
    name = ds.info.get("name", ds.root.name)
    src = ds.info.get("source") or {}
    intro = (
        f"<p>Dataset <b>{esc(name)}</b> at <code>{esc(ds.root)}</code>, source format "
        f"<code>{esc(src.get('format', '?'))}</code>, {len(pal.classes)} classes incl. background.</p>"
    )
    return intro + table(head, body)


def render_history(run: Run, w: ReportWriter) -> str:
    from training.report.plots import plot_history

    if not run.history.ok:
        return na(run.history.note)
    hist = run.history.value
    if not [c for c in hist if c != "epoch"]:
        return na("history.csv has no metric columns")
    plot_history(hist, w.assets / "training_curves.png")
    n = len(next(iter(hist.values())))
    last = {k: v[-1] for k, v in hist.items() if k != "epoch"}
    body = table(["metric", "last epoch"], [[esc(k), fmt(v)] for k, v in last.items()])
    return (
        f"<p>{n} epochs from <code>history.csv</code>.</p>"
        + w.img_tag(f"{ASSETS}/training_curves.png", "training curves")
        + body
    )


def render_evaluation(run: Run, w: ReportWriter) -> str:
    from training.report.plots import plot_confusion

    if not run.evaluation.ok:
        return na(run.evaluation.note)
    ev = run.evaluation.value
    per_class = ev.get("per_class") or {}
    colors = {}
    if run.dataset.ok:
        colors = {c.name: c.color for c in run.dataset.value.palette.classes}
    names = list(ev.get("classes") or per_class.keys())
    parts = [
        f"<p>Mean IoU over defect classes <b>{fmt(ev.get('mean_iou'))}</b>, pixel accuracy "
        f"<b>{fmt(ev.get('pixel_accuracy'))}</b>"
        + (f" on split <b>{esc(ev['split'])}</b>" if ev.get("split") else "")
        + " (from <code>evaluation.json</code>).</p>"
    ]
    if per_class:
        rows = []
        for name, sc in per_class.items():
            sc = sc if isinstance(sc, dict) else {}
            label = (swatch(colors[name]) if name in colors else "") + esc(name)
            rows.append(
                [label] + [fmt(sc.get(k)) for k in ("iou", "dice", "precision", "recall")] + [fmt(sc.get("support"))]
            )
        parts.append(table(["class", "IoU", "Dice", "precision", "recall", "support (pixels)"], rows, "scores"))
    else:
        parts.append(na("evaluation.json has no per_class scores"))
    shown = {"mean_iou", "pixel_accuracy", "split", "per_class", "confusion_matrix", "classes"}
    extra = [[esc(k), esc(fmt(v))] for k, v in ev.items() if k not in shown and isinstance(v, int | float | str)]
    if extra:
        parts.append("<details><summary>other values in evaluation.json</summary>" + table(["key", "value"], extra))
        parts.append("</details>")
    cm = ev.get("confusion_matrix")
    try:
        cm_arr = np.asarray(cm, dtype=np.int64) if cm is not None else None
    except (TypeError, ValueError):
        cm_arr = None
    if cm_arr is not None and cm_arr.ndim == 2 and cm_arr.shape[0] == cm_arr.shape[1] and cm_arr.size:
        k = cm_arr.shape[0]
        labels = names if len(names) == k else [str(i) for i in range(k)]
        plot_confusion(cm_arr, labels, w.assets / "confusion_matrix.png")
        parts.append("<h3>Confusion matrix</h3>")
        parts.append(w.img_tag(f"{ASSETS}/confusion_matrix.png", "confusion matrix"))
        body = [[esc(labels[i])] + [fmt(int(v)) for v in cm_arr[i]] for i in range(k)]
        parts.append("<p>Pixel counts (rows = true class, columns = predicted):</p>")
        parts.append(table(["true \\ predicted", *(esc(n) for n in labels)], body, "cm"))
    else:
        parts.append(na("evaluation.json has no square confusion_matrix"))
    return "".join(parts)


def render_samples(run: Run, w: ReportWriter, *, samples: int, predict: bool) -> str:
    if not run.dataset.ok:
        return na(run.dataset.note)
    ds = run.dataset.value
    cfg = run.config.value or {}
    split = ((cfg.get("eval") or {}).get("split")) or "test"
    rows = ds.rows_in(split)
    where = f"split {split!r}"
    if not rows:
        rows, where = ds.rows, "all rows (the dataset has no such split)"
    chosen = pick_samples(rows, samples, ds.palette.names)
    if not chosen:
        return na("the dataset has no samples")
    images, truths, problems = [], [], []
    for r in chosen:
        try:
            images.append(ds.read_image(r))
            truths.append(ds.read_mask(r))
        except Exception as e:  # a broken file must not stop the report
            problems.append(f"{r['id']}: {e}")
            images.append(None)
            truths.append(None)
    preds: list[np.ndarray | None] = [None] * len(chosen)
    pred_note = ""
    model = run.root / "model.keras"
    if not predict:
        pred_note = "predictions disabled (--no-predict)"
    elif not model.is_file():
        pred_note = "model.keras not found in the run directory"
    else:
        ok = [i for i, img in enumerate(images) if img is not None]
        try:
            predicted = predict_masks(model, [images[i] for i in ok])
            top = max((int(p.max()) for p in predicted), default=0)
            if top >= len(ds.palette.classes):
                raise ValueError(
                    f"the model predicts class {top} but the dataset has {len(ds.palette.classes)} classes"
                )
            for i, p in zip(ok, predicted, strict=True):
                preds[i] = p
        except Exception as e:  # the report stays useful without a loadable model
            pred_note = f"could not predict with model.keras: {type(e).__name__}: {e}"
    cells = [
        '<div class="hd">sample</div><div class="hd">image</div><div class="hd">ground truth</div>'
        '<div class="hd">prediction</div>'
    ]
    pal = ds.palette
    for k, (r, img, truth, pred) in enumerate(zip(chosen, images, truths, preds, strict=True)):
        base = f"sample_{k:02d}_{safe_name(r['id'])}"
        label = f"<div><b>{esc(r['id'])}</b><br>{esc(r.get('label', ''))}"
        if pred is not None and truth is not None:
            label += f"<br>pixel acc. {fmt(float((pred == truth).mean()))}"
        cells.append(label + "</div>")
        if img is None:
            cells.append('<div class="na">unreadable</div>' * 3)
            continue
        cells.append(w.img_tag(w.image(f"{base}_image.png", img), f"{r['id']} image"))
        cells.append(w.img_tag(w.image(f"{base}_truth.png", pal.colorize(truth), nearest=True), f"{r['id']} truth"))
        if pred is not None:
            cells.append(
                w.img_tag(w.image(f"{base}_pred.png", pal.colorize(pred), nearest=True), f"{r['id']} prediction")
            )
        else:
            cells.append('<div class="na">not available</div>')
    legend = " ".join(f"{swatch(c.color)}{esc(c.name)}" for c in pal.classes)
    head = f"<p>{len(chosen)} samples of {esc(where)}, at least one per defect class. Legend: {legend}</p>"
    notes = "".join(na(p) for p in problems) + (na(pred_note) if pred_note else "")
    return head + notes + '<div class="grid">' + "".join(cells) + "</div>"


def render_strips(run: Run, w: ReportWriter) -> str:
    if not run.strips:
        return na("no epoch_NNN/ prediction strips in the run directory")
    epochs = list(run.strips)
    if len(epochs) > MAX_STRIP_EPOCHS:
        idx = np.unique(np.linspace(0, len(epochs) - 1, MAX_STRIP_EPOCHS).round().astype(int))
        epochs = [epochs[i] for i in idx]
    by_sample: dict[str, list[tuple[int, Path]]] = {}
    for e in epochs:
        for p in run.strips[e]:
            by_sample.setdefault(p.stem, []).append((e, p))
    parts = [
        f"<p>Each strip is image | ground truth | prediction for a fixed validation sample; epochs "
        f"{', '.join(str(e) for e in epochs)} of {len(run.strips)} shown.</p>"
    ]
    for stem, items in sorted(by_sample.items()):
        figs = []
        for e, p in items:
            try:
                img = read_image(p)
            except Exception as err:  # a corrupt strip is reported, not fatal
                figs.append(f"<figure>{na(f'{p.name}: {err}')}</figure>")
                continue
            src = w.image(f"strip_{safe_name(stem)}_e{e:04d}.png", img, nearest=True)
            figs.append(f"<figure>{w.img_tag(src, f'{stem} epoch {e}')}<figcaption>epoch {e}</figcaption></figure>")
        parts.append(f"<h3>{esc(stem)}</h3><div class='row'>{''.join(figs)}</div>")
    return '<div class="strips">' + "".join(parts) + "</div>"


def render_infer(infer_dir: Path | None, w: ReportWriter, limit: int) -> str | None:
    """Outputs of `defectkit infer`: overlay | colorized mask per image (masks/, overlays/, regions/<stem>.json);
    any other folder of PNGs is shown as a plain gallery."""
    if infer_dir is None:
        return None
    if not infer_dir.is_dir():
        return na(f"{infer_dir} is not a folder")
    intro = f"<p>Outputs of <code>defectkit infer</code> in <code>{esc(infer_dir)}</code>.</p>"
    masks, overlays = infer_dir / "masks", infer_dir / "overlays"
    if masks.is_dir():
        figs = []
        for k, mask_p in enumerate(sorted(masks.glob("*.png"))[:limit]):
            pics = []
            for kind, p in (("overlay", overlays / mask_p.name), ("mask", mask_p)):
                if not p.is_file():
                    continue
                try:
                    src = w.image(f"infer_{k:03d}_{kind}.png", read_image(p), nearest=kind == "mask")
                    pics.append(w.img_tag(src, f"{mask_p.stem} {kind}"))
                except Exception as err:  # a corrupt output is reported, not fatal
                    pics.append(na(f"{p.name}: {err}"))
            caption = esc(mask_p.stem)
            regions_p = infer_dir / "regions" / f"{mask_p.stem}.json"
            try:
                info = json.loads(regions_p.read_text(encoding="utf-8"))
                areas = ", ".join(f"{esc(c)} {fmt(int(a))} px" for c, a in (info.get("classes") or {}).items())
                caption += f" · {len(info.get('regions') or [])} regions" + (f" · {areas}" if areas else "")
            except (OSError, ValueError, TypeError, AttributeError):
                pass
            figs.append(f"<figure><div class='pair'>{''.join(pics)}</div><figcaption>{caption}</figcaption></figure>")
        if figs:
            return intro + f"<div class='gallery'>{''.join(figs)}</div>"
    pngs = sorted(p for p in infer_dir.rglob("*.png") if p.is_file())[:limit]
    if not pngs:
        return na(f"no PNG files in {infer_dir}")
    figs = []
    for k, p in enumerate(pngs):
        try:
            src = w.image(f"infer_{k:03d}_{safe_name(p.stem)}.png", read_image(p))
        except Exception as err:  # a corrupt output is reported, not fatal
            figs.append(f"<figure>{na(f'{p.name}: {err}')}</figure>")
            continue
        caption = esc(p.relative_to(infer_dir))
        figs.append(f"<figure>{w.img_tag(src, p.name)}<figcaption>{caption}</figcaption></figure>")
    return intro + f"<div class='gallery'>{''.join(figs)}</div>"


def render_page(title: str, subtitle: str, cards: str, sections: Sequence[str]) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width,initial-scale=1"><title>{esc(title)}</title>'
        f"<style>{CSS}</style><script>{JS}</script></head><body>"
        f"<header><h1>{esc(title)}</h1><p>{subtitle}</p></header><main>"
        f"{('<section>' + cards + '</section>') if cards else ''}{''.join(sections)}</main></body></html>\n"
    )


# --- entry point -----------------------------------------------------------------------------------------
def find_infer_dir(run_dir: Path, exclude: Path) -> Path | None:
    """A `defectkit infer` output folder directly inside the run directory (it has masks/ and overlays/)."""
    for d in sorted(p for p in run_dir.iterdir() if p.is_dir()):
        if d.resolve() != exclude.resolve() and (d / "masks").is_dir() and (d / "overlays").is_dir():
            return d
    return None


def default_out(run_dir: Path) -> Path:
    return Path(run_dir) / "report"


def build_report(
    run_dir: Path,
    out: Path | None = None,
    *,
    samples: int = 8,
    predict: bool = True,
    infer_dir: Path | None = None,
    overwrite: bool = False,
) -> Path:
    """Write `<out>/report.html` (+ `<out>/assets/`) for a run directory; returns the HTML file's path.

    `out` defaults to `<run_dir>/report`; `infer_dir` defaults to an infer output folder found directly
    inside the run directory (one with masks/ and overlays/). An existing `out` is replaced when it
    holds a previous report (it has a `report.html`) or `overwrite` is set; otherwise that is an error,
    as is a `run_dir` holding none of config.toml, history.csv, evaluation.json, model.keras.
    """
    run_dir = Path(run_dir)
    out = Path(out) if out is not None else default_out(run_dir)
    if not run_dir.is_dir():
        raise InputError("run directory not found", str(run_dir))
    if not any((run_dir / f).exists() for f in RUN_FILES) and not find_strips(run_dir, out):
        raise InputError(f"not a training run directory: none of {', '.join(RUN_FILES)} found", str(run_dir))
    r_out, r_run = out.resolve(), run_dir.resolve()
    if r_out == r_run or r_run.is_relative_to(r_out):
        raise InputError("the report folder must not be (or contain) the run directory", str(out))
    if out.exists() and not overwrite and not (out / REPORT_HTML).is_file():
        raise InputError(
            "already exists and is not a previous report; choose another --out or pass --overwrite", str(out)
        )
    run = load_run(run_dir, exclude=out)
    if infer_dir is None:
        infer_dir = find_infer_dir(run_dir, out)
    with atomic_dir(out, overwrite=True) as tmp:
        w = ReportWriter(tmp)
        w.section("Evaluation", render_evaluation(run, w), "evaluation")
        w.section(
            "Test samples: image | ground truth | prediction",
            render_samples(run, w, samples=samples, predict=predict),
            "samples",
        )
        w.section("Training curves", render_history(run, w), "curves")
        w.section("Prediction strips per epoch", render_strips(run, w), "strips")
        w.section("Dataset", render_dataset(run), "dataset")
        infer_html = render_infer(infer_dir, w, samples)
        if infer_html is not None:
            w.section("Inference outputs", infer_html, "infer")
        w.section("Configuration", render_config(run), "config")
        title = f"defectkit report: {run_dir.resolve().name}"
        subtitle = f"run directory <code>{esc(run_dir.resolve())}</code> · defectkit {esc(__version__)}"
        page = render_page(title, subtitle, render_header_cards(run), w.sections)
        (tmp / REPORT_HTML).write_text(page, encoding="utf-8")
    return out / REPORT_HTML
