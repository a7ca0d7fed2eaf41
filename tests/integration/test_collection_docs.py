"""The collection's documentation as a docs site needs it: `antsibull-docs lint-collection-docs --plugin-docs`
(every module, plugin and role documentation, as `make docs` renders it) reports nothing. A pytest test rather
than a step of `make lint`, so that its ~20 s of ansible-doc runs beside other tests under pytest-xdist."""

from __future__ import annotations

import os
import subprocess
import sys

from harness import REPO


def test_lint_collection_docs(collections_path: str) -> None:
    bin_dir = os.path.dirname(sys.executable)
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections_path, PATH=bin_dir + os.pathsep + os.environ["PATH"])
    collection = os.path.join(collections_path, "ansible_collections", "iotfleet", "provisioning")
    result = subprocess.run(
        [os.path.join(bin_dir, "antsibull-docs"), "lint-collection-docs", "--plugin-docs", "."],
        cwd=collection,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0 and result.stdout.strip() == "", result.stdout[-5000:] + result.stderr[-3000:]
    assert os.path.realpath(collection) == os.path.realpath(REPO)
