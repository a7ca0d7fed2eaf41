"""The certificate module (create_keys) when its CreateKeysAndCertificate goes wrong, checked with plain boto3.

An endpoint of its own (faults and latency are switched per test through /_local/traffic):

* test_lost_answer_is_not_repeated: every answer is lost after the call ran (`drop-after`). botocore's retry
  handler used to repeat the call up to max_attempts times, each making a certificate whose key nobody saw. Now
  it is sent once; the re-run reports the certificate it may have made (its key is lost, nothing proves whose it
  is) and makes the device's certificate.
* test_killed_right_after_create_keys: the module process is killed (SIGKILL, with ansible-playbook) while the
  call is in flight; the certificate is made anyway. The re-run reports it.
* test_unwritable_certificate_path_is_completed_by_the_rerun: the certificate file cannot be written (the path
  is taken by a directory while the call is in flight); the failure says a re-run completes it, and it does,
  with the same certificate, instead of refusing to overwrite the key.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import stat
import subprocess
import sys
import time

import pytest
from harness import (
    REPO,
    ansible_env,
    control,
    endpoint_without_managed_policies,
    iot_client,
    recap,
    reset_endpoint,
    run_playbook,
)

sys.path.insert(0, os.path.join(REPO, "tests", "local_iot"))


POLICY_DOCUMENT = json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:Connect", "Resource": "*"}]}
)

PLAYBOOK = """
- name: A certificate from AWS-generated keys
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Create keys and certificate
      iotfleet.provisioning.certificate:
        endpoint_url: "{{ local_iot_endpoint }}"
        region: us-east-1
        access_key: testing
        secret_key: testing
        create_keys: true
        private_key_path: "{{ work }}/device.key"
        certificate_path: "{{ work }}/device.pem"
        thing: "{{ thing | default(omit) }}"
        policies: "{{ policies | default(omit) }}"
      register: cert_result
      ignore_errors: true

    - name: Keep the result
      ansible.builtin.copy:
        content: "{{ cert_result | to_json }}"
        dest: "{{ result_file }}"
        mode: "0600"
"""


@pytest.fixture(scope="module")
def endpoint() -> str:
    log = os.path.join(REPO, "tests", "output", f"local_iot-certificate-faults-{os.getpid()}.log")
    os.makedirs(os.path.dirname(log), exist_ok=True)
    with endpoint_without_managed_policies([], log) as url:  # no IAM call here: resets take milliseconds
        yield url


@pytest.fixture
def setup(endpoint, tmp_path, collections_path):
    control(endpoint, "/_local/traffic", "DELETE")
    reset_endpoint(endpoint)
    work = tmp_path / "work"
    work.mkdir()
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAYBOOK)
    return {
        "url": endpoint,
        "work": work,
        "playbook": str(playbook),
        "collections": collections_path,
        "tmp": str(tmp_path),
        "vars": {"local_iot_endpoint": endpoint, "work": str(work), "result_file": str(tmp_path / "result.json")},
    }


def _run(s: dict, **extra_vars) -> dict:
    result = run_playbook(s["playbook"], s["url"], s["collections"], s["tmp"], {**s["vars"], **extra_vars})
    assert result.returncode == 0 and recap(result.stdout)["failed"] == 0, result.stdout[-6000:] + result.stderr
    with open(s["vars"]["result_file"]) as handle:
        return json.load(handle)


def _certificates(url: str) -> dict:
    """id -> status of every certificate, read with a plain boto3 client (faults must be off)."""
    iot = iot_client(url)
    pages = iot.get_paginator("list_certificates").paginate(pageSize=250)
    return {c["certificateId"]: c["status"] for page in pages for c in page["certificates"]}


def _creates(url: str) -> int:
    return sum(1 for call in control(url, "/_local/calls")["calls"] if call == "CreateKeysAndCertificate")


def _kill_tree(root: int) -> None:
    """root and every descendant (from /proc), the deepest first: the module process too."""
    children: dict = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                ppid = int(handle.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    for pid in reversed(tree):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _start(s: dict, **extra_vars) -> subprocess.Popen:
    ansible_playbook = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
    args = [
        ansible_playbook,
        "-i",
        "localhost,",
        "-c",
        "local",
        s["playbook"],
        "-e",
        json.dumps({**s["vars"], **extra_vars}),
    ]
    env = ansible_env(s["url"], s["collections"], s["tmp"])
    return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)


def _when_create_arrives(s: dict, process: subprocess.Popen, action) -> None:
    """Run ``action`` once the endpoint has received CreateKeysAndCertificate (counted on arrival, before the
    latency sleep, so the call is still in flight), then wait for the playbook to end."""
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and process.poll() is None:
            counters = control(s["url"], "/_local/traffic")["counters"]
            if counters.get("CreateKeysAndCertificate", {}).get("calls", 0) >= 1:
                action()
                break
            time.sleep(0.02)
        else:
            pytest.fail("the playbook ended (or timed out) before CreateKeysAndCertificate arrived")
    finally:
        if process.poll() is None:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                _kill_tree(process.pid)
                process.wait(timeout=10)


def test_lost_answer_is_not_repeated(setup):
    s = setup
    url, work = s["url"], s["work"]
    control(url, "/_local/traffic", "POST", {"fault_rate": 1.0, "fault_kinds": ["drop-after"]})
    control(url, "/_local/calls", "DELETE")
    first = _run(s)
    sent = _creates(url)
    control(url, "/_local/traffic", "DELETE")
    made = _certificates(url)
    print("CreateKeysAndCertificate sent:", sent, "certificates made:", len(made))
    assert first["failed"]
    assert sent == 1, f"CreateKeysAndCertificate was sent {sent} times after its answer was lost"
    assert len(made) == 1 and list(made.values()) == ["INACTIVE"]
    assert "not retried" in first["msg"] and ".device.key.create-intent.json" in first["msg"]
    assert not (work / "device.key").exists()

    (orphan,) = made
    second = _run(s)
    assert not second.get("failed") and second["changed"]
    assert second["orphaned_certificates_suspected"] == [orphan]
    assert second["orphaned_certificates_deleted"] == []
    assert any(orphan in w for w in second.get("warnings", []))
    now = _certificates(url)
    assert now[orphan] == "INACTIVE"  # reported, left alone
    assert now[second["certificate"]["certificate_id"]] == "ACTIVE" and len(now) == 2
    assert sorted(os.listdir(work)) == ["device.key", "device.pem"]

    control(url, "/_local/calls", "DELETE")
    third = _run(s)
    assert not third["changed"] and third["orphaned_certificates_suspected"] == []
    assert _creates(url) == 0


def test_killed_right_after_create_keys(setup):
    s = setup
    url, work = s["url"], s["work"]
    # The call waits 1.5 s on the endpoint before it runs: the kill lands while it is in flight.
    control(url, "/_local/traffic", "POST", {"latency_ms": 1500})
    process = _start(s)
    _when_create_arrives(s, process, lambda: _kill_tree(process.pid))
    time.sleep(2.5)  # the endpoint finishes the call: the certificate exists, its answer goes nowhere
    control(url, "/_local/traffic", "DELETE")
    made = _certificates(url)
    assert len(made) == 1 and list(made.values()) == ["INACTIVE"], made
    # The intent record, no key; a SIGKILL also leaves the (empty) temporary files of the key and certificate.
    record = work / ".device.key.create-intent.json"
    assert record.exists() and not (work / "device.key").exists()
    assert stat.S_IMODE(record.stat().st_mode) == 0o600

    (orphan,) = made
    second = _run(s)
    assert not second.get("failed") and second["changed"]
    assert second["orphaned_certificates_suspected"] == [orphan]
    now = _certificates(url)
    assert now == {orphan: "INACTIVE", second["certificate"]["certificate_id"]: "ACTIVE"}
    assert sorted(os.listdir(work)) == ["device.key", "device.pem"]


def test_unwritable_certificate_path_is_completed_by_the_rerun(setup):
    s = setup
    url, work = s["url"], s["work"]
    iot = iot_client(url)
    iot.create_thing(thingName="cf-device")
    iot.create_policy(policyName="cf-policy", policyDocument=POLICY_DOCUMENT)
    extra = {"thing": "cf-device", "policies": ["cf-policy"]}
    control(url, "/_local/traffic", "POST", {"latency_ms": 1500})
    process = _start(s, **extra)
    # While the call is in flight the certificate path is taken (a directory): its file cannot be written.
    _when_create_arrives(s, process, (work / "device.pem").mkdir)
    control(url, "/_local/traffic", "DELETE")
    with open(s["vars"]["result_file"]) as handle:
        first = json.load(handle)
    made = _certificates(url)
    (cert_id,) = made
    assert first["failed"], first
    assert "certificate_path" in first["msg"] and "run the task again" in first["msg"]
    assert cert_id in first["msg"]
    assert made[cert_id] == "INACTIVE"
    key = work / "device.key"
    assert key.exists() and stat.S_IMODE(key.stat().st_mode) == 0o600

    (work / "device.pem").rmdir()
    second = _run(s, **extra)
    assert not second.get("failed"), second.get("msg")
    assert second["changed"] and second["certificate"]["certificate_id"] == cert_id
    assert second["diff"]["before"]["status"] == "INACTIVE"
    assert second["certificate"]["status"] == "ACTIVE"
    assert second["certificate"]["things"] == ["cf-device"] and second["certificate"]["policies"] == ["cf-policy"]
    assert _certificates(url) == {cert_id: "ACTIVE"}
    pem = iot.describe_certificate(certificateId=cert_id)["certificateDescription"]["certificatePem"]
    assert (work / "device.pem").read_text() == pem
    assert sorted(os.listdir(work)) == ["device.key", "device.pem"]

    control(url, "/_local/calls", "DELETE")
    third = _run(s, **extra)
    assert not third["changed"]
    mutating = [c for c in control(url, "/_local/calls")["calls"] if not c.startswith(("Describe", "List", "Get"))]
    assert mutating == []
