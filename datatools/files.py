"""File I/O shared by every command: image decode/encode, hashing, atomic output."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from datatools.errors import InputError
from datatools.interrupts import shielded

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
PNG_COMPRESSION = 1  # zlib level: encoding dominates conversion time; level 1 is ~2x faster than 3 for ~4% more bytes


class ImageReadError(ValueError):
    """A file that is missing, unreadable or not a decodable 8-bit image."""


def read_image(path: Path, *, gray: bool = False, exif: bool = True) -> np.ndarray:
    """Decode an image file to uint8: H×W (grayscale) or H×W×3 RGB. Alpha is dropped.

    `gray=True` returns the file's luminance (as OpenCV computes it) for masks. The EXIF orientation
    tag is applied (`exif=True`), as annotation tools, the Supervisely SDK and `cv2.imread` show the
    picture: a phone photo stored sideways comes out the way it was labelled.
    """
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except FileNotFoundError:
        raise ImageReadError("file is missing") from None
    except OSError as e:
        raise ImageReadError(f"cannot read file: {e.strerror or e}") from None
    return decode_image(data, gray=gray, exif=exif)


def decode_image(data: bytes | np.ndarray, *, gray: bool = False, exif: bool = True) -> np.ndarray:
    """`read_image` for encoded bytes already in memory (e.g. an image embedded in an annotation file)."""
    if not isinstance(data, np.ndarray):
        data = np.frombuffer(data, dtype=np.uint8)
    if data.size == 0:
        raise ImageReadError("file is empty")
    flag = cv2.IMREAD_GRAYSCALE if gray else cv2.IMREAD_UNCHANGED
    img = cv2.imdecode(data, flag)
    if img is None:
        raise ImageReadError("not a readable image (corrupt or unsupported format)")
    if img.dtype != np.uint8:
        raise ImageReadError(f"{img.dtype} images are not supported, convert to 8-bit")
    if img.ndim == 3:
        if img.shape[2] == 1:
            img = img[:, :, 0]
        elif img.shape[2] == 4:
            img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
        else:
            img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    if exif:
        img = apply_orientation(img, exif_orientation(data))
    return img


_EXIF_MAGIC = (b"\xff\xd8", b"II*\x00", b"MM\x00*")


def exif_orientation(data: bytes | np.ndarray) -> int:
    """The EXIF orientation tag (1…8) of an encoded image, 1 when absent or unreadable."""
    raw = data.tobytes() if isinstance(data, np.ndarray) else bytes(data)
    is_png_exif = raw.startswith(b"\x89PNG") and b"eXIf" in raw
    is_webp = raw[:4] == b"RIFF" and raw[8:12] == b"WEBP"
    if not (raw.startswith(_EXIF_MAGIC) or is_png_exif or is_webp):
        return 1
    from PIL import Image

    try:
        with Image.open(io.BytesIO(raw)) as im:
            value = int(im.getexif().get(0x0112, 1))
    except Exception:  # a broken EXIF block must not make a decodable image unreadable
        return 1
    return value if 1 <= value <= 8 else 1


def apply_orientation(img: np.ndarray, orientation: int) -> np.ndarray:
    """Turn pixels stored with EXIF `orientation` into the upright picture (as PIL's exif_transpose)."""
    if orientation == 2:
        img = img[:, ::-1]
    elif orientation == 3:
        img = img[::-1, ::-1]
    elif orientation == 4:
        img = img[::-1]
    elif orientation == 5:
        img = img.swapaxes(0, 1)
    elif orientation == 6:
        img = np.rot90(img, -1)
    elif orientation == 7:
        img = img[::-1, ::-1].swapaxes(0, 1)
    elif orientation == 8:
        img = np.rot90(img, 1)
    return np.ascontiguousarray(img)


def encode_png(image: np.ndarray) -> bytes:
    """H×W or H×W×3 RGB uint8 → PNG bytes (lossless, deterministic)."""
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, PNG_COMPRESSION])
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


def write_bytes(path: Path, data: bytes) -> str:
    """Write `data` (creating folders) and return its sha256 hex digest."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def write_png(path: Path, image: np.ndarray) -> str:
    """Encode and write a PNG; returns the sha256 of the bytes written."""
    return write_bytes(path, encode_png(image))


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def to_rgb(image: np.ndarray) -> np.ndarray:
    return np.repeat(image[:, :, None], 3, axis=2) if image.ndim == 2 else image


def check_output_target(out: Path, *, overwrite: bool = False, inputs: tuple[Path, ...] = ()) -> None:
    """Fail before any work when OUT exists (without --overwrite) or would clobber an input."""
    out = Path(out)
    resolved = out.resolve()
    for src in inputs:
        s = Path(src).resolve()
        if resolved == s or s.is_relative_to(resolved) or resolved.is_relative_to(s):
            raise InputError("output must not be, contain or lie inside the input", str(out))
    remove_stale_siblings(out)  # may put back an OUT a killed run had moved aside
    if out.exists() and not overwrite:
        raise InputError("already exists; choose another path or pass --overwrite", str(out))


# Temporary siblings are named `.{name}.tmp-{host}-{pid}-XXXXXXXX` (`.old-` for the OUT being replaced), so the
# next run writing the same name can tell those of dead runs (removed) from those of live ones (kept).
_TEMP_NAME = re.compile(r"\.(tmp|old)-([0-9a-f]{8})-([0-9]+)-[a-z0-9_]+")


def host_tag() -> str:
    """8 hex digits naming this machine (container) in temporary names: a pid is only checked on its own host."""
    return hashlib.sha256(socket.gethostname().encode("utf-8")).hexdigest()[:8]


def _temp_prefix(target: Path, kind: str) -> str:
    return f".{target.name}.{kind}-{host_tag()}-{os.getpid()}-"


def inside_temporary(path: Path) -> bool:
    """Whether `path` lies in a temporary sibling of ours (an enclosing command owns and removes it)."""
    return any(_TEMP_NAME.search(part) for part in Path(path).parent.parts)


def committing(path: Path) -> contextlib.AbstractContextManager[None]:
    """`shielded()` for the step that puts `path` in place: Ctrl-C / SIGTERM then wait for it to finish.

    When `path` is final (not inside a temporary), an interrupt that came meanwhile is reported as such:
    "interrupted; PATH had just been written in full and is kept", not "nothing was written".
    """
    done = None if inside_temporary(path) else f"interrupted; {path} had just been written in full and is kept"
    return shielded(completed=done)


def pid_alive(pid: int) -> bool:
    """Whether process `pid` exists on this machine (when in doubt: True, so nothing live is ever removed)."""
    if os.name == "nt" or pid <= 0:
        return True  # os.kill(pid, 0) would send CTRL_C_EVENT on Windows; temporaries there are kept
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: alive, owned by someone else
        return True
    return True


def remove_stale_siblings(target: Path) -> list[Path]:
    """Remove the temporary siblings of `target` left by runs that died (SIGKILL, power loss); return them.

    Only names carrying this host's tag and the pid of a process that no longer exists are touched; those of
    a live concurrent run, of another host, or without an owner (older versions) stay. A dead run's `.old-`
    sibling still holding the previous OUT (it died between the two renames of a replace) is put back as
    `target` when `target` is missing, never deleted.
    """
    target = Path(target)
    prefix, host, removed = f".{target.name}", host_tag(), []
    try:
        entries = [e for e in os.scandir(target.parent) if e.name.startswith(prefix)]
    except OSError:
        return []
    for entry in sorted(entries, key=lambda e: e.name):  # .old- before .tmp-
        m = _TEMP_NAME.fullmatch(entry.name[len(prefix) :])
        if m is None or m.group(2) != host or int(m.group(3)) == os.getpid() or pid_alive(int(m.group(3))):
            continue
        path = Path(entry.path)
        kept = path / "x"
        with shielded():
            if m.group(1) == "old" and kept.exists() and not target.exists():
                os.replace(kept, target)
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    path.unlink()
        removed.append(path)
    return removed


@contextlib.contextmanager
def atomic_dir(out: Path, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling of `out`; on success it replaces `out`, on any failure it is removed.

    A failed or interrupted command therefore never leaves a half-written OUT. Ctrl-C / SIGTERM are deferred
    while the temporary is removed or renamed into place (`datatools.interrupts.shielded`). The temporary's
    name carries this host and pid; siblings of dead runs are removed first (`remove_stale_siblings`).
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_siblings(out)
    tmp = Path(tempfile.mkdtemp(prefix=_temp_prefix(out, "tmp"), dir=out.parent))
    try:
        yield tmp
    except BaseException:
        with shielded():  # a second Ctrl-C must not stop the clean-up half way
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    with committing(out):  # an interrupt here is delivered once OUT is complete (new, or still the old one)
        if out.exists():
            if not overwrite:
                shutil.rmtree(tmp, ignore_errors=True)
                raise InputError("already exists; choose another path or pass --overwrite", str(out))
            old = Path(tempfile.mkdtemp(prefix=_temp_prefix(out, "old"), dir=out.parent))
            os.replace(out, old / "x")
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)


@contextlib.contextmanager
def atomic_file(path: Path) -> Iterator[Path]:
    """Yield a path named like `path` in a temporary sibling folder; on success it replaces `path` in one rename.

    For writers that insist on a file name (Keras wants `*.keras`): an interrupted or failed write leaves
    `path` as it was and removes the temporary (Ctrl-C / SIGTERM wait for the rename and the clean-up).
    """
    path = Path(path)
    if not inside_temporary(path):
        remove_stale_siblings(path)
    folder = Path(tempfile.mkdtemp(prefix=_temp_prefix(path, "tmp"), dir=path.parent))
    try:
        yield folder / path.name
        with shielded():
            os.replace(folder / path.name, path)
    finally:
        with shielded():
            shutil.rmtree(folder, ignore_errors=True)


def atomic_write_text(path: Path, text: str) -> None:
    """Write a file through a temporary sibling and rename it into place (removing those of dead runs first)."""
    path = Path(path)
    if not inside_temporary(path):  # in a fresh temporary of ours nothing can be stale
        remove_stale_siblings(path)
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path, "tmp"), dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        with shielded(), contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def list_images(folder: Path) -> list[Path]:
    """Image files directly inside `folder`, sorted by name."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
