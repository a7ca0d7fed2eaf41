"""Run every integration target (tests/integration/targets/NAME) as a playbook.

A target follows the usual shape: check mode, apply, check again, apply again,
remove, remove again, with asserts after each step on both the module's result
and the endpoint's state (read by iot_probe.py, a client independent of ours).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from harness import REPO, reset_endpoint

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


def ansible_env(endpoint: str, collections_path: str, tmp_path: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        ANSIBLE_COLLECTIONS_PATH=collections_path,
        ANSIBLE_ROLES_PATH=TARGETS_DIR,
        ANSIBLE_PYTHON_INTERPRETER=sys.executable,
        ANSIBLE_LOCALHOST_WARNING="false",
        ANSIBLE_INVENTORY_UNPARSED_WARNING="false",
        ANSIBLE_FORCE_COLOR="false",
        ANSIBLE_NOCOLOR="true",
        ANSIBLE_HOME=os.path.join(tmp_path, "ansible_home"),
        ANSIBLE_LOCAL_TEMP=os.path.join(tmp_path, "ansible_tmp"),
        LOCAL_IOT_ENDPOINT=endpoint,
        AWS_REGION="us-east-1",
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
    )
    return env


def run_playbook(
    playbook: str, endpoint: str, collections_path: str, tmp_path: str, extra_vars: dict[str, str]
) -> subprocess.CompletedProcess:
    path = os.path.join(tmp_path, "play.yml")
    with open(path, "w") as handle:
        handle.write(playbook)
    args = ["ansible-playbook", "-i", "localhost,", "-c", "local", path, "--diff"]
    for key, value in extra_vars.items():
        args += ["-e", f"{key}={value}"]
    ansible_playbook = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
    if os.path.exists(ansible_playbook):
        args[0] = ansible_playbook
    env = ansible_env(endpoint, collections_path, tmp_path)
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=900, check=False)


@pytest.mark.parametrize("target", TARGETS)
def test_target(target: str, local_iot_endpoint: str, collections_path: str, tmp_path) -> None:
    reset_endpoint(local_iot_endpoint)
    result = run_playbook(
        PLAYBOOK.format(target=target),
        local_iot_endpoint,
        collections_path,
        str(tmp_path),
        {
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
