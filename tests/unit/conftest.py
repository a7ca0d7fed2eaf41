"""Make the repo importable as ansible_collections.iotfleet.provisioning for unit tests."""

from __future__ import annotations

import os
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _collection_root() -> str:
    # Inside an ansible_collections tree already (ansible-test's copy): use it.
    parts = REPO.split(os.sep)
    if len(parts) >= 3 and parts[-3] == "ansible_collections":
        return os.sep.join(parts[:-3])
    root = tempfile.mkdtemp(prefix="iotfleet-unit-")
    namespace = os.path.join(root, "ansible_collections", "iotfleet")
    os.makedirs(namespace)
    os.symlink(REPO, os.path.join(namespace, "provisioning"))
    return root


sys.path.insert(0, _collection_root())
