"""Copy the study files of ``studies/`` into the package (``hpsearch/examples/``).

    python scripts/sync_examples.py

``studies/`` is the one place to edit them; ``hpsearch example NAME`` serves the package's
copies to users who installed hpsearch without the repository. ``tests/test_examples.py``
fails while the two differ.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STUDIES = ROOT / "studies"
PACKAGE = ROOT / "hpsearch" / "examples"
#: What ``studies/`` holds that the package ships: study files and the objectives they use.
SHIPPED = ("*.toml", "*.py")


def shipped(folder: Path) -> dict[str, Path]:
    return {
        p.name: p
        for pattern in SHIPPED
        for p in folder.glob(pattern)
        if not p.name.startswith("_")
    }


def main() -> int:
    source, copies = shipped(STUDIES), shipped(PACKAGE)
    for name in sorted(copies.keys() - source.keys()):
        copies[name].unlink()
        print(f"removed hpsearch/examples/{name} (not in studies/)")
    for name, path in sorted(source.items()):
        target = PACKAGE / name
        if not target.exists() or target.read_bytes() != path.read_bytes():
            shutil.copyfile(path, target)
            print(f"copied studies/{name} -> hpsearch/examples/{name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
