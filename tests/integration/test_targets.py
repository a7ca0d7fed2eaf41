"""Run every integration target (tests/integration/targets/NAME) as a playbook.

A target follows the usual shape: check mode, apply, check again, apply again,
remove, remove again, with asserts after each step on both the module's result
and the endpoint's state (read by iot_probe.py, a client independent of ours).
"""

from __future__ import annotations

import os

import pytest
from harness import REPO, reset_endpoint, run_playbook

TARGETS_DIR = os.path.join(REPO, "tests", "integration", "targets")


def _enabled_targets() -> list[str]:
    """Targets with tasks, minus those whose aliases file says `disabled`."""
    if not os.path.isdir(TARGETS_DIR):
        return []
    names = []
    for name in sorted(os.listdir(TARGETS_DIR)):
        if not os.path.isfile(os.path.join(TARGETS_DIR, name, "tasks", "main.yml")):
            continue
        aliases_path = os.path.join(TARGETS_DIR, name, "aliases")
        aliases = ""
        if os.path.exists(aliases_path):
            with open(aliases_path) as handle:
                aliases = handle.read()
        if "disabled" not in aliases.split():
            names.append(name)
    return names


TARGETS = _enabled_targets()

PLAYBOOK = """
- name: Integration target {target}
  hosts: localhost
  gather_facts: false
  module_defaults:
    group/iotfleet.provisioning.aws:
      endpoint_url: "{{{{ local_iot_endpoint }}}}"
      region: us-east-1
      access_key: testing
      secret_key: testing
  roles:
    - role: {target}
"""


@pytest.mark.parametrize("target", TARGETS)
def test_target(target: str, local_iot_endpoint: str, collections_path: str, tmp_path) -> None:
    reset_endpoint(local_iot_endpoint)
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAYBOOK.format(target=target))
    result = run_playbook(
        str(playbook),
        local_iot_endpoint,
        collections_path,
        str(tmp_path),
        extra_env={"ANSIBLE_ROLES_PATH": TARGETS_DIR},
        extra_vars={
            "local_iot_endpoint": local_iot_endpoint,
            "iot_probe": os.path.join(REPO, "tests", "integration", "iot_probe.py"),
            "output_dir": str(tmp_path / "output"),
            "resource_prefix": f"it-{target.replace('_', '-')}",
        },
    )
    if result.returncode != 0:
        pytest.fail(
            f"target {target} failed (rc={result.returncode})\n{result.stdout[-20000:]}\n{result.stderr[-5000:]}"
        )
