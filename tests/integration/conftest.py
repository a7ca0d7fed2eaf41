"""Integration targets: each runs as a playbook against one local endpoint."""

from __future__ import annotations

import os
import sys
import tempfile

import pytest
from harness import REPO

sys.path.insert(0, os.path.join(REPO, "tests", "local_iot"))

import launcher


@pytest.fixture(scope="session")
def local_iot_endpoint() -> str:
    """An endpoint for the whole session: LOCAL_IOT_ENDPOINT if set, else one we start."""
    given = os.environ.get("LOCAL_IOT_ENDPOINT")
    if given:
        yield given
        return
    log = os.path.join(REPO, "tests", "output", "local_iot.log")
    os.makedirs(os.path.dirname(log), exist_ok=True)
    with launcher.running_endpoint(log_path=log) as url:
        yield url


@pytest.fixture(scope="session")
def collections_path() -> str:
    """A collections tree holding this repo as iotfleet.provisioning (a symlink suffices for ansible-playbook)."""
    root = tempfile.mkdtemp(prefix="iotfleet-collections-")
    namespace = os.path.join(root, "ansible_collections", "iotfleet")
    os.makedirs(namespace)
    os.symlink(REPO, os.path.join(namespace, "provisioning"))
    return root
