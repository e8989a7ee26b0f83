"""Make a BagIt bag (RFC 8493) with the Library of Congress ``bagit`` library.

``bagit.make_bag`` changes the process's working directory while it runs, which every
other thread of a threaded server would see (an export task runs in the request's thread
in the embedded default). So the library runs in a child process of its own, on the
package's absolute path; the parent's working directory never changes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date
from pathlib import Path

from provenance.evidence.errors import EvidenceError

# The child: the library's own make_bag, SHA-256 manifests only.
_CHILD = (
    "import json, sys, bagit\n"
    "bagit.make_bag(sys.argv[1], json.loads(sys.argv[2]), checksums=['sha256'])\n"
)
# Hashing a package's files takes seconds; an hour means something is wrong.
_TIMEOUT_SECONDS = 3600


def make_bag(bag_dir: Path, bag_info: dict[str, str], *, bagging_date: date) -> None:
    """Turn the directory ``bag_dir`` into a bag: its contents move under ``data/``.

    Args:
        bag_info: ``bag-info.txt`` fields; the library adds ``Bag-Software-Agent`` and
            ``Payload-Oxum``.
        bagging_date: the date written as ``Bagging-Date`` (time is a parameter).

    Raises:
        EvidenceError: the library could not make the bag (its last message is named).
    """
    info = {"Bagging-Date": bagging_date.isoformat(), **bag_info}
    try:
        result = subprocess.run(
            [sys.executable, "-c", _CHILD, str(bag_dir.resolve()), json.dumps(info)],
            capture_output=True,
            text=True,
            timeout=_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired as e:
        raise EvidenceError("making the BagIt bag took longer than an hour") from e
    if result.returncode != 0:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        reason = lines[-1] if lines else f"exit status {result.returncode}"
        raise EvidenceError(f"the BagIt library could not make the bag: {reason}")
