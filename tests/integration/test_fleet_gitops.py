"""AWS is the source of truth of a fleet, not the controller's files (issue 10), checked with plain boto3.

GitOps runs a fleet from fresh CI runners: a PR job plans with --check --diff, a merge job applies, each on a
machine that never has the device keys of earlier runs.

* test_fresh_runner_keeps_the_attached_certificates: a fleet of 4 devices (csr and aws_keys) applied with
  output directory A, then the same devices applied with an empty output directory B: the check-mode plan
  predicts no certificate change (only a policy added on the attached certificate), the apply creates no
  certificate, the report says the key is not on this controller, a second run changes nothing and makes no
  mutating call.
* test_replace_lost_keys_replaces_in_the_safe_order: with replace_lost_keys the same fresh runner replaces
  each certificate: new certificate (key in B, 0600) attached and ACTIVE, the old one detached and deleted.
* test_failures_within_max_failures_warn: a device that fails within max_failures is named in a warning.
"""

from __future__ import annotations

import json
import os
import stat
import sys

from harness import REPO, control, iot_client, reset_endpoint, run_playbook

sys.path.insert(0, os.path.join(REPO, "tests", "integration", "targets", "fleet", "files"))

import fleet_check

PLAYBOOK = """
- name: Fleet
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Apply the fleet
      iotfleet.provisioning.fleet:
        endpoint_url: "{{ local_iot_endpoint }}"
        region: us-east-1
        access_key: testing
        secret_key: testing
        devices: "{{ devices }}"
        fleet_group: "{{ fleet_group }}"
        output_dir: "{{ fleet_out }}"
        report_path: "{{ report_path | default(omit) }}"
        plan_path: "{{ plan_path | default(omit) }}"
        replace_lost_keys: "{{ replace_lost_keys | default(omit) }}"
        max_failures: "{{ max_failures | default(omit) }}"
        progress_interval: 0
      register: fleet_result

    - name: Show the result
      ansible.builtin.debug:
        var: fleet_result
"""

MUTATING_PREFIXES = ("List", "Describe", "Get")


def _playbook(tmp_path) -> str:
    path = tmp_path / "play.yml"
    path.write_text(PLAYBOOK)
    return str(path)


def _devices(policy: str) -> list:
    return [
        {"name": "git-000", "certificate": "csr", "policies": [policy]},
        {"name": "git-001", "certificate": "aws_keys", "policies": [policy]},
        {"name": "git-002", "certificate": "csr", "policies": [policy]},
        {"name": "git-003", "certificate": "aws_keys", "policies": [policy]},
    ]


def _mutating(url: str) -> list:
    return [c for c in control(url, "/_local/calls")["calls"] if not c.startswith(MUTATING_PREFIXES)]


def _certificates(iot) -> dict:
    return {c["certificateId"]: c["status"] for c in fleet_check.pages(iot, "list_certificates", "certificates")}


def _attached(iot, name: str) -> list:
    return [p.rsplit("/", 1)[1] for p in iot.list_thing_principals(thingName=name)["principals"]]


def _applied_once(url, collections_path, tmp_path):
    """The fleet applied from output directory A; the extra vars of a fresh runner with directory B."""
    reset_endpoint(url)
    iot = iot_client(url)
    for policy in ("git-policy", "git-extra"):
        iot.create_policy(policyName=policy, policyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}))
    devices = _devices("git-policy")
    first = {
        "local_iot_endpoint": url,
        "devices": devices,
        "fleet_group": "git-fleet",
        "fleet_out": str(tmp_path / "A"),
        "report_path": str(tmp_path / "A-report.json"),
    }
    result = run_playbook(_playbook(tmp_path), url, collections_path, str(tmp_path), first)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]
    expected = {"fleet_group": "git-fleet", "output_dir": first["fleet_out"], "devices": devices}
    assert fleet_check.check(expected, url)["problems"] == []
    fresh = dict(first, fleet_out=str(tmp_path / "B"), report_path=str(tmp_path / "B-report.json"))
    return iot, fresh


def test_fresh_runner_keeps_the_attached_certificates(local_iot_endpoint, collections_path, tmp_path):
    url = local_iot_endpoint
    iot, fresh = _applied_once(url, collections_path, tmp_path)
    before = _certificates(iot)
    attached = {d["name"]: _attached(iot, d["name"]) for d in fresh["devices"]}
    # One device gets one more policy: converged on its attached certificate, not on a new one.
    fresh["devices"][3] = dict(fresh["devices"][3], policies=["git-policy", "git-extra"])
    fresh["plan_path"] = str(tmp_path / "B-plan.json")
    playbook = _playbook(tmp_path)
    control(url, "/_local/calls", "DELETE")
    checked = run_playbook(playbook, url, collections_path, str(tmp_path), fresh, check=True)
    assert checked.returncode == 0, checked.stdout[-5000:] + checked.stderr[-2000:]
    assert _mutating(url) == []
    assert "create certificate" not in checked.stdout, checked.stdout[-5000:]
    assert "not on this controller" in checked.stdout, checked.stdout[-5000:]
    with open(fresh["plan_path"], encoding="utf-8") as handle:
        planned = {d["name"]: d for d in json.load(handle)["devices"]}
    assert planned["git-003"]["changes"] == ["attach policies git-extra"]
    for name in ("git-000", "git-001", "git-002"):
        assert planned[name]["action"] == "unchanged", planned[name]
    for name, device in planned.items():
        assert device["before"]["certificate"]["certificate_id"] == attached[name][0]
        assert device["after"]["certificate"]["certificate_id"] == attached[name][0]
        assert device["after"]["certificate"]["key"] == "not on this controller"
    applied = run_playbook(playbook, url, collections_path, str(tmp_path), fresh)
    assert applied.returncode == 0, applied.stdout[-5000:] + applied.stderr[-2000:]
    assert _certificates(iot) == before
    assert not [c for c in control(url, "/_local/calls")["calls"] if c.startswith("Create")]
    with open(fresh["report_path"], encoding="utf-8") as handle:
        report = json.load(handle)
    assert report["summary"]["created"] == 0
    assert report["summary"]["updated"] == 1
    assert {row["name"]: row["key"] for row in report["devices"]} == {
        d["name"]: "not on this controller" for d in fresh["devices"]
    }
    assert not os.path.exists(os.path.join(fresh["fleet_out"], "git-000", "private.pem.key"))
    policies = iot.list_attached_policies(
        target=iot.describe_certificate(certificateId=attached["git-003"][0])["certificateDescription"][
            "certificateArn"
        ]
    )["policies"]
    assert sorted(p["policyName"] for p in policies) == ["git-extra", "git-policy"]
    # Converged: nothing to do, not one mutating call.
    control(url, "/_local/calls", "DELETE")
    again = run_playbook(playbook, url, collections_path, str(tmp_path), fresh)
    assert again.returncode == 0, again.stdout[-5000:]
    assert '"changed": false' in again.stdout, again.stdout[-5000:]
    assert _mutating(url) == []


def test_replace_lost_keys_replaces_in_the_safe_order(local_iot_endpoint, collections_path, tmp_path):
    url = local_iot_endpoint
    iot, fresh = _applied_once(url, collections_path, tmp_path)
    old = {d["name"]: _attached(iot, d["name"])[0] for d in fresh["devices"]}
    fresh["replace_lost_keys"] = True
    playbook = _playbook(tmp_path)
    control(url, "/_local/calls", "DELETE")
    checked = run_playbook(playbook, url, collections_path, str(tmp_path), fresh, check=True)
    assert checked.returncode == 0, checked.stdout[-5000:]
    assert _mutating(url) == []
    assert checked.stdout.count("replace certificate") == 4, checked.stdout[-5000:]
    control(url, "/_local/calls", "DELETE")
    applied = run_playbook(playbook, url, collections_path, str(tmp_path), fresh)
    assert applied.returncode == 0, applied.stdout[-5000:] + applied.stderr[-2000:]
    calls = _mutating(url)
    # Safe order per device: the new certificate is in use before the old one goes.
    assert calls.index("DeleteCertificate") > calls.index("UpdateCertificate")
    assert calls.count("DeleteCertificate") == 4
    expected = {"fleet_group": "git-fleet", "output_dir": fresh["fleet_out"], "devices": fresh["devices"]}
    state = fleet_check.check(expected, url)
    assert state["problems"] == [], state
    certificates = _certificates(iot)
    assert len(certificates) == 4
    assert not set(old.values()) & set(certificates)
    for device in fresh["devices"]:
        key = os.path.join(fresh["fleet_out"], device["name"], "private.pem.key")
        assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    control(url, "/_local/calls", "DELETE")
    again = run_playbook(playbook, url, collections_path, str(tmp_path), fresh)
    assert again.returncode == 0, again.stdout[-5000:]
    assert '"changed": false' in again.stdout, again.stdout[-5000:]
    assert _mutating(url) == []


def test_failures_within_max_failures_warn(local_iot_endpoint, collections_path, tmp_path):
    url = local_iot_endpoint
    reset_endpoint(url)
    devices = [
        {"name": "warn-000", "certificate": "csr"},
        {"name": "warn-001", "certificate": "csr", "policies": ["no-such-policy"]},
    ]
    extra = {
        "local_iot_endpoint": url,
        "devices": devices,
        "fleet_group": "warn-fleet",
        "fleet_out": str(tmp_path / "W"),
        "max_failures": 1,
    }
    result = run_playbook(_playbook(tmp_path), url, collections_path, str(tmp_path), extra)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]
    text = " ".join((result.stdout + result.stderr).split())
    assert "[WARNING]: 1 of 2 device(s) failed" in text, result.stdout[-5000:]
    assert "warn-001" in text
