"""Write a BagIt bag (RFC 8493) in place, by absolute paths.

``bagit.make_bag`` changes the process's working directory while it runs, which breaks
every other thread of a threaded server that relies on relative paths. This writer makes
the same bag (payload under ``data/``, ``manifest-sha256.txt``, ``bagit.txt``,
``bag-info.txt`` with ``Payload-Oxum``, ``tagmanifest-sha256.txt``) without touching the
working directory; ``bagit.Bag(...).validate()`` accepts it.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from datetime import date
from pathlib import Path

from provenance.evidence import layout

_BLOCK = 1 << 16
_AGENT = "cardtrace evidence package"


def _sha256_file(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while block := f.read(_BLOCK):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def _payload_files(data_dir: Path) -> list[Path]:
    # RFC 8493 §2.1.3: every payload file is listed; sorted so the manifest is stable.
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(data_dir):
        dirnames.sort()
        found.extend(Path(dirpath) / name for name in sorted(filenames))
    return found


def _tag_line(value: str) -> str:
    # A tag value is one line (RFC 8493 §2.2.2).
    return re.sub(r"[\r\n]", "", value)


def make_bag(bag_dir: Path, bag_info: dict[str, str], *, bagging_date: date) -> None:
    """Turn the directory ``bag_dir`` into a bag: its contents move under ``data/``.

    Args:
        bag_info: ``bag-info.txt`` fields; ``Bagging-Date``, ``Bag-Software-Agent`` and
            ``Payload-Oxum`` are added.
        bagging_date: the date written as ``Bagging-Date`` (time is a parameter).
    """
    bag_dir = bag_dir.resolve()
    staging = Path(tempfile.mkdtemp(dir=bag_dir))
    for child in sorted(bag_dir.iterdir()):
        if child != staging:
            child.rename(staging / child.name)
    data_dir = bag_dir / "data"
    staging.rename(data_dir)
    os.chmod(data_dir, os.stat(bag_dir).st_mode)

    lines = []
    total_bytes = 0
    files = _payload_files(data_dir)
    for path in files:
        digest, size = _sha256_file(path)
        total_bytes += size
        relative = path.relative_to(bag_dir).as_posix()
        # RFC 8493 §2.1.3: CR and LF in a file name are percent-encoded.
        relative = relative.replace("\r", "%0D").replace("\n", "%0A")
        lines.append(f"{digest}  {relative}\n")
    (bag_dir / layout.MANIFEST).write_text("".join(lines), encoding="utf-8")
    (bag_dir / layout.BAGIT).write_text(
        "BagIt-Version: 0.97\nTag-File-Character-Encoding: UTF-8\n", encoding="utf-8"
    )
    info = dict(bag_info)
    info.setdefault("Bagging-Date", bagging_date.isoformat())
    info.setdefault("Bag-Software-Agent", _AGENT)
    info["Payload-Oxum"] = f"{total_bytes}.{len(files)}"
    (bag_dir / layout.BAG_INFO).write_text(
        "".join(f"{name}: {_tag_line(info[name])}\n" for name in sorted(info)),
        encoding="utf-8",
    )
    tags = []
    for name in (layout.BAGIT, layout.BAG_INFO, layout.MANIFEST):
        digest, _size = _sha256_file(bag_dir / name)
        tags.append(f"{digest} {name}\n")
    (bag_dir / layout.TAGMANIFEST).write_text("".join(tags), encoding="utf-8")
