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


# Seconds of the other long integration tests (per test, pytest --durations in CI, 5 December): like the targets, they
# start early so that neither worker is left with one of them at the end. Only the order depends on these figures.
LONG_INTEGRATION_TESTS = {
    "test_jitp_ca_rotation.py": 100,  # an estimate (6 runs, about 25 connections), not yet a CI figure
    "test_fleet_provisioning_role.py": 74,
    "test_jitp_role.py": 70,
    "test_device_connect.py": 41,
    "test_fleet_rotation.py": 35,  # measured 30-40 s at load 4-6 (issue 15), not yet in a CI run
    "test_single_thing_role.py": 35,
    "test_first_check.py": 32,
    "test_fleet_faults.py": 30,
    "test_aws_run.py": 29,
    "test_fleet_safety.py": 27,
    "test_bulk_role.py": 25,
    "test_certificate_rotation_role.py": 22,  # measured at about 21 s of CPU on 5 December, not yet in a CI run
    "test_jitp_checkmode.py": 24,
}


def _run_order(item: pytest.Item) -> tuple[int, float]:
    """Integration targets and the long integration tests first, longest first; other integration tests; local
    endpoint tests; the rest."""
    path = str(item.path)
    if path.endswith(os.path.join("tests", "integration", "test_targets.py")) and hasattr(item, "callspec"):
        from test_targets import expected_seconds

        return (0, -expected_seconds(item.callspec.params["target"]))
    if os.path.basename(path) in LONG_INTEGRATION_TESTS:
        return (0, -LONG_INTEGRATION_TESTS[os.path.basename(path)])
    if os.sep + os.path.join("tests", "integration") + os.sep in path:
        return (1, 0.0)
    if os.sep + os.path.join("tests", "local_iot") + os.sep in path:
        return (2, 0.0)
    return (3, 0.0)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Long tests first, so that under pytest-xdist (`--dist worksteal`) no worker is left with a long one at the
    end while the other idles: each worker's queue ends with short tests, and an idle worker steals from the end of
    the other's queue. The sort is stable: within a group, tests keep their collection order."""
    items.sort(key=_run_order)
