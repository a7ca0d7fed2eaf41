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
    log = os.path.join(REPO, "tests", "output", f"local_iot-{os.getpid()}.log")
    os.makedirs(os.path.dirname(log), exist_ok=True)
    # AWS's waits, shortened but not removed, so the modules' retry paths still run: a thing type
    # can be deleted 3 s after deprecation (AWS: 5 min); a detached principal still blocks DeleteThing for 1 s.
    timing = ["--thing-type-delete-wait", "3", "--detach-consistency-delay", "1"]
    with launcher.running_endpoint(extra_args=timing, log_path=log) as url:
        yield url


@pytest.fixture(scope="session")
def collections_path() -> str:
    """A collections tree holding this repo as iotfleet.provisioning (a symlink suffices for ansible-playbook)."""
    root = tempfile.mkdtemp(prefix="iotfleet-collections-")
    namespace = os.path.join(root, "ansible_collections", "iotfleet")
    os.makedirs(namespace)
    os.symlink(REPO, os.path.join(namespace, "provisioning"))
    return root
