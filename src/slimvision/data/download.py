"""`--download` for CIFAR-10/100: the official archive, md5-checked, unpacked atomically.

Nothing is fetched unless asked. The archive is written to a temp file, its md5 compared with
the published one, unpacked (tarfile's "data" filter: no absolute paths, links out or devices)
into a temp directory beside the target, and that directory renamed into place: an interrupted
or corrupt download leaves nothing behind. SLIMVISION_CIFAR_MIRROR (a base URL) replaces the
official host, e.g. a local `file://` copy.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from slimvision.data.cifar import LAYOUTS
from slimvision.errors import DataError

OFFICIAL_BASE_URL = "https://www.cs.toronto.edu/~kriz/"
MIRROR_ENV = "SLIMVISION_CIFAR_MIRROR"


@dataclass(frozen=True)
class Archive:
    """A published dataset archive: file name and md5 as listed by the dataset's authors."""

    filename: str
    md5: str


ARCHIVES = {
    "cifar10": Archive("cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a"),
    "cifar100": Archive("cifar-100-python.tar.gz", "eb9058c3a382ffc7106e4002c42a8d85"),
}


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download_cifar(name: str, root: str | Path, base_url: str | None = None, md5: str | None = None) -> Path:
    """Make sure `root/<official folder>` holds CIFAR `name`, downloading it if needed; returns that folder."""
    if name not in ARCHIVES:
        raise DataError(f"--download supports {', '.join(ARCHIVES)}, not {name!r}")
    archive, layout = ARCHIVES[name], LAYOUTS[name]
    root = Path(root)
    target = root / layout.folder
    if target.is_dir():
        return target
    root.mkdir(parents=True, exist_ok=True)
    base = base_url or os.environ.get(MIRROR_ENV) or OFFICIAL_BASE_URL
    url = base.rstrip("/") + "/" + archive.filename
    if url.split(":", 1)[0] not in ("https", "http", "file"):
        raise DataError(f"{url}: only https://, http:// and file:// URLs are fetched")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{archive.filename}.", suffix=".part", dir=root)
    tmp_archive = Path(tmp_name)
    unpack_dir = Path(tempfile.mkdtemp(prefix=f".{layout.folder}.", dir=root))
    try:
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:  # noqa: S310 (http(s)/file only)
                shutil.copyfileobj(response, out, 1 << 20)
        except OSError as exc:
            raise DataError(f"{url}: download failed ({exc})") from None
        found = _md5(tmp_archive)
        expected = md5 or archive.md5
        if found != expected:
            raise DataError(f"{url}: md5 {found} does not match the published {expected} (corrupt or wrong file)")
        try:
            with tarfile.open(tmp_archive) as tar:
                tar.extractall(unpack_dir, filter="data")
        except (tarfile.TarError, OSError) as exc:
            raise DataError(f"{url}: cannot unpack ({exc})") from None
        if not (unpack_dir / layout.folder).is_dir():
            raise DataError(f"{url}: archive has no {layout.folder}/ folder")
        os.replace(unpack_dir / layout.folder, target)
    finally:
        tmp_archive.unlink(missing_ok=True)
        shutil.rmtree(unpack_dir, ignore_errors=True)
    return target
