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
# Test-only plugins: the iot_probe action (iot_probe.py run in Ansible's worker, not a new Python per call)
# and a callback that imports it, boto3 and a client once in ansible-playbook's main process for the workers.
PROBE_PLUGINS = os.path.join(REPO, "tests", "integration", "plugins")


def _probe_env() -> dict[str, str]:
    """ANSIBLE_ACTION_PLUGINS and ANSIBLE_CALLBACK_PLUGINS with the test plugins added to any given."""
    env = {}
    for name, sub in (("ANSIBLE_ACTION_PLUGINS", "action"), ("ANSIBLE_CALLBACK_PLUGINS", "callback")):
        paths = [os.path.join(PROBE_PLUGINS, sub)]
        if os.environ.get(name):
            paths.append(os.environ[name])
        env[name] = os.pathsep.join(paths)
    return env


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

# Seconds each target took (pytest --durations, -n 2, on the 2-core CI machine, 5 December), used only to run the
# longest first (see conftest.py). A target not listed counts as the longest, so a new one is started early.
EXPECTED_SECONDS = {
    "certificate": 85,
    "ca_certificate": 75,
    "fleet": 47,
    "thing_registration_task": 46,
    "policy": 42,
    "thing_group": 41,
    "policy_attachment": 41,
    "thing": 27,
    "provisioning_template": 25,
    "provisioning_role": 24,
    "thing_type": 23,
    "thing_principal": 19,
    "device_certificate": 18,
    "dynamic_thing_group": 18,
    "register_thing": 18,
    "local_ca": 18,
    "thing_info": 16,
    "provisioning_claim": 16,
    "certificate_info": 16,
    "billing_group": 14,
    "csr": 13,
    "policy_info": 13,
    "fleet_indexing": 10,
    "provisioning_template_info": 10,
    "endpoint_info": 10,
}


def expected_seconds(target: str) -> float:
    return EXPECTED_SECONDS.get(target, max(EXPECTED_SECONDS.values()))


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
        extra_env={"ANSIBLE_ROLES_PATH": TARGETS_DIR, **_probe_env()},
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


PROBE_CHECK = """
- name: The iot_probe action returns what the iot_probe.py command returns
  hosts: localhost
  gather_facts: false
  vars:
    probe: ["{{ ansible_playbook_python }}", "{{ iot_probe }}"]
    cases:
      - ["describe_thing", '{"thingName": "probe-check"}']
      - ["describe_thing", '{"thingName": "probe-missing"}']
      - ["list_things", "{}"]
      - ["--service", "iam", "list_roles", "{}"]
      - ["--mutating-calls"]
      - ["--tags", "{{ (made.stdout | from_json).policyArn }}"]
    pki: "{{ targets }}/certificate/files/pki.py"
    fleet_checker: "{{ targets }}/fleet/files/fleet_check.py"
    helper_cases:
      - ["{{ pki }}", inspect, --cert, "{{ work }}/h.pem", --key, "{{ work }}/h.key"]
      - ["{{ targets }}/local_ca/files/inspect_pem.py", "{{ work }}/h.pem", --key, "{{ work }}/h.key"]
      - ["{{ pki }}", inspect, --cert, "{{ work }}/fleet.pem"]
      - ["{{ pki }}", no-such-command]
      - ["{{ targets }}/local_ca/files/inspect_pem.py"]
    policy_document: >-
      {"Version": "2012-10-17",
      "Statement": [{"Effect": "Allow", "Action": "iot:Connect", "Resource": "*"}]}
  tasks:
    - name: A thing, made through the action
      iot_probe:
        argv: "{{ probe + ['create_thing', {'thingName': 'probe-check'} | to_json] }}"
      changed_when: true
    - name: A policy with a tag, made through the action
      iot_probe:
        argv: "{{ probe + ['create_policy', {'policyName': 'probe-check', 'policyDocument': policy_document,
                 'tags': [{'Key': 'k', 'Value': 'v'}]} | to_json] }}"
      register: made
      changed_when: true
    - name: Each case through the action
      iot_probe:
        argv: "{{ probe + item }}"
      loop: "{{ cases }}"
      register: via_action
      changed_when: false
    - name: Each case through the command
      ansible.builtin.command:
        argv: "{{ probe + item }}"
      loop: "{{ cases }}"
      register: via_command
      changed_when: false
    - name: Same rc and same JSON, case by case
      ansible.builtin.assert:
        that:
          - item.0.rc == item.1.rc == 0
          - (item.0.stdout | from_json) == (item.1.stdout | from_json)
      loop: "{{ via_action.results | zip(via_command.results) | list }}"
      loop_control:
        label: "{{ item.0.item }}"
    - name: The cases saw the endpoint (so that equal answers are not empty ones)
      ansible.builtin.assert:
        that:
          - (via_action.results[0].stdout | from_json).thingName == 'probe-check'
          - (via_action.results[1].stdout | from_json).error == 'ResourceNotFoundException'
          - (via_action.results[4].stdout | from_json).calls == ['CreateThing', 'CreatePolicy']
          - (via_action.results[5].stdout | from_json).tags == dict(k='v')
    - name: An operation boto3 does not have fails the task, as the command does
      iot_probe:
        argv: "{{ probe + ['no_such_operation', '{}'] }}"
      register: bad
      ignore_errors: true
    - name: Not a probe command at all
      iot_probe:
        argv: ["{{ ansible_playbook_python }}", "-c", "print(1)"]
      register: other
      ignore_errors: true
    - name: Both failed, with the reason
      ansible.builtin.assert:
        that:
          - bad is failed and bad.rc == 1 and 'no_such_operation' in bad.stderr
          - other is failed and 'iot_probe.py' in other.msg

    - name: A key and a certificate for the helper cases, made through the target_helper action
      target_helper:
        argv: "{{ [ansible_playbook_python] + item }}"
      loop:
        - ["{{ pki }}", key, "{{ work }}/h.key"]
        - ["{{ pki }}", self-signed, "{{ work }}/h.key", "{{ work }}/h.pem", helper-check]
        - ["{{ fleet_checker }}", make-pem, "{{ work }}/fleet.pem", helper-check-fleet]
      changed_when: true
    - name: Each helper case through the action
      target_helper:
        argv: "{{ [ansible_playbook_python] + item }}"
      loop: "{{ helper_cases }}"
      register: helper_action
      failed_when: false
      changed_when: false
    - name: Each helper case through the command
      ansible.builtin.command:
        argv: "{{ [ansible_playbook_python] + item }}"
      loop: "{{ helper_cases }}"
      register: helper_command
      failed_when: false
      changed_when: false
    - name: Same rc, stdout and stderr, case by case
      ansible.builtin.assert:
        that:
          - item.0.rc == item.1.rc
          - item.0.stdout == item.1.stdout
          - item.0.stderr == item.1.stderr
      loop: "{{ helper_action.results | zip(helper_command.results) | list }}"
      loop_control:
        label: "{{ item.0.item }}"
    - name: The helper cases read the files (so that equal answers are not empty ones), and failed where due
      ansible.builtin.assert:
        that:
          - (helper_action.results[0].stdout | from_json).keys_match
          - (helper_action.results[0].stdout | from_json).key_mode == '0o600'
          - (helper_action.results[1].stdout | from_json).key_matches
          - (helper_action.results[1].stdout | from_json).subject == 'CN=helper-check'
          - (helper_action.results[2].stdout | from_json).certificate_id is match('^[0-9a-f]{64}$')
          - helper_action.results[3].rc == 2 and helper_action.results[3].stderr == 'unknown command no-such-command'
          - helper_action.results[4].rc == 2 and 'required' in helper_action.results[4].stderr
    - name: A script outside the targets' files directories
      target_helper:
        argv: ["{{ ansible_playbook_python }}", "{{ iot_probe }}", "list_things"]
      register: not_helper
      ignore_errors: true
    - name: It is refused, with the reason
      ansible.builtin.assert:
        that:
          - not_helper is failed and 'not a helper script' in not_helper.msg
"""


def test_probe_action_matches_command(local_iot_endpoint: str, collections_path: str, tmp_path) -> None:
    """The targets' iot_probe action gives, call by call, the rc and JSON of iot_probe.py run as a command;
    the target_helper action, the rc, stdout and stderr of the targets' helper scripts run as commands."""
    reset_endpoint(local_iot_endpoint)
    playbook = tmp_path / "probe.yml"
    playbook.write_text(PROBE_CHECK)
    result = run_playbook(
        str(playbook),
        local_iot_endpoint,
        collections_path,
        str(tmp_path),
        extra_env=_probe_env(),
        extra_vars={
            "iot_probe": os.path.join(REPO, "tests", "integration", "iot_probe.py"),
            "targets": TARGETS_DIR,
            "work": str(tmp_path),
        },
    )
    assert result.returncode == 0, result.stdout[-10000:] + result.stderr[-3000:]
    assert "failed=0" in result.stdout and "ignored=3" in result.stdout
