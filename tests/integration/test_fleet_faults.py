"""The fleet module under faults and a SIGKILL, checked against the endpoint's state with plain boto3.

An endpoint of its own with AWS default quotas (scaled x20 to keep the test short) and 5% faults of every
kind, including `drop-after` (the call ran, its answer is lost):

* test_fleet_under_faults: a 30-device fleet ends exactly right: thing, groups, one ACTIVE certificate that
  matches its key file, policies; no certificate attached to no thing, none INACTIVE, except those the sweep
  reports as kept (an AWS-keys call whose answer was lost: nothing proves the certificate this fleet's).
* test_fleet_killed_and_rerun: a run killed (SIGKILL to ansible-playbook and every descendant, the module
  process included) after the endpoint saw some
  certificate creations, then run again to completion, ends just as exact.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from harness import REPO, ansible_env, control, endpoint_without_managed_policies, recap, reset_endpoint, run_playbook

sys.path.insert(0, os.path.join(REPO, "tests", "local_iot"))
sys.path.insert(0, os.path.join(REPO, "tests", "integration", "targets", "fleet", "files"))

import contextlib

import fleet_check

FAULT_ARGS = [
    "--fault-rate",
    "0.05",
    "--fault-kinds",
    "throttle,500,503,drop,drop-after",
    "--fault-seed",
    "7",
    "--quotas",
    "aws-default",
    "--quota-scale",
    "20",
    "--detach-consistency-delay",
    "1",
]

POLICY_DOCUMENT = json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:Connect", "Resource": "*"}]}
)

PLAYBOOK = """
- name: Fleet under faults
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Apply the fleet
      iotfleet.provisioning.fleet:
        endpoint_url: "{{ local_iot_endpoint }}"
        region: us-east-1
        access_key: testing
        secret_key: testing
        devices_file: "{{ devices_file }}"
        fleet_group: "{{ fleet_group }}"
        output_dir: "{{ fleet_out }}"
        report_path: "{{ report_path }}"
      register: fleet_result

    - name: Show the summary
      ansible.builtin.debug:
        var: fleet_result.summary
"""


@pytest.fixture(scope="module")
def fault_endpoint() -> str:
    log = os.path.join(REPO, "tests", "output", f"local_iot-faults-{os.getpid()}.log")
    os.makedirs(os.path.dirname(log), exist_ok=True)
    with endpoint_without_managed_policies(FAULT_ARGS, log) as url:  # no IAM call here: resets take milliseconds
        yield url


def _fresh(url: str) -> None:
    control(url, "/_local/traffic", "DELETE")
    reset_endpoint(url)


def _setup_fleet(url: str, tmp_path, prefix: str, count: int) -> dict:
    """The policy and group the devices use (made with plain boto3, faults off meanwhile), and the devices file."""
    control(url, "/_local/traffic", "POST", {"fault_rate": 0})
    # Never set LOCAL_IOT_ENDPOINT in this process: the session's endpoint fixture reads it.
    iot = fleet_check.client(url)
    policy = f"{prefix}-policy"
    iot.create_policy(policyName=policy, policyDocument=POLICY_DOCUMENT)
    control(url, "/_local/traffic", "DELETE")
    devices = []
    for i in range(count):
        source = ("aws_keys", "csr", "csr", "none")[i % 4]
        device = {
            "name": f"{prefix}-{i:03d}",
            "attributes": {"idx": str(i), "batch": "b1"},
            "thing_groups": [f"{prefix}-site-{i % 2}"],
            "certificate": source,
        }
        if source != "none":
            device["policies"] = [policy]
        devices.append(device)
    devices_file = tmp_path / "fleet.jsonl"
    devices_file.write_text("".join(json.dumps(d) + "\n" for d in devices))
    return {
        "devices": devices,
        "fleet_group": f"{prefix}-fleet",
        "output_dir": str(tmp_path / "out"),
        "devices_file": str(devices_file),
    }


def _extra_vars(url: str, fleet: dict, tmp_path) -> dict:
    return {
        "local_iot_endpoint": url,
        "devices_file": fleet["devices_file"],
        "fleet_group": fleet["fleet_group"],
        "fleet_out": fleet["output_dir"],
        "report_path": str(tmp_path / "report.json"),
    }


def _check(url: str, fleet: dict) -> dict:
    # The checker's own boto3 retries cope with the faults; its reads change nothing.
    expected = {"fleet_group": fleet["fleet_group"], "output_dir": fleet["output_dir"], "devices": fleet["devices"]}
    return fleet_check.check(expected, url)


def _traffic_counters(url: str) -> dict:
    return control(url, "/_local/traffic")


def test_fleet_under_faults(fault_endpoint, collections_path, tmp_path):
    _fresh(fault_endpoint)
    fleet = _setup_fleet(fault_endpoint, tmp_path, "ft", 30)
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAYBOOK)
    result = run_playbook(
        str(playbook), fault_endpoint, collections_path, str(tmp_path), _extra_vars(fault_endpoint, fleet, tmp_path)
    )
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-3000:]
    traffic = _traffic_counters(fault_endpoint)
    # The faults did happen (the test would prove nothing otherwise).
    assert sum(traffic["fault_kinds"].values()) > 0, traffic
    report = json.loads((tmp_path / "report.json").read_text())
    print(
        "faults:", traffic["fault_kinds"], "summary:", {k: v for k, v in report["summary"].items() if k != "api_calls"}
    )
    assert report["summary"]["created"] == 30
    assert report["summary"]["failed"] == 0
    assert report["summary"]["retries"] > 0
    state = _check(fault_endpoint, fleet)
    _assert_exact_but_kept(state, report["orphaned_certificates_kept"])


def _assert_exact_but_kept(state: dict, kept: list) -> None:
    """The fleet is exact (23 certificates attached, ACTIVE) except for the certificates the sweep reported
    and kept: those of AWS-keys calls whose answers were lost, which nothing proves this fleet's."""
    assert sorted(state["orphan_ids"]) == sorted(kept)
    expected_problems = [f"{len(kept)} certificates attached to no thing", f"{len(kept)} certificates not ACTIVE"]
    assert state["problems"] == (expected_problems if kept else [])
    assert state["inactive"] == len(kept)
    assert state["certificates_attached"] == 23
    assert state["certificates_total"] == 23 + len(kept)


def _process_tree(root: int) -> list:
    """root and every descendant (from /proc), so the module process is killed too whatever its session."""
    children: dict = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                stat = handle.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def _kill_tree(root: int) -> list:
    tree = _process_tree(root)
    for pid in reversed(tree):  # the deepest first: the module itself
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return tree


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _calls(url: str) -> list:
    return control(url, "/_local/calls")["calls"]


def test_fleet_killed_and_rerun(fault_endpoint, collections_path, tmp_path):
    _fresh(fault_endpoint)
    fleet = _setup_fleet(fault_endpoint, tmp_path, "kl", 30)
    # Latency widens the window in which a certificate call is in flight when the kill lands.
    control(fault_endpoint, "/_local/traffic", "POST", {"latency_ms": 60, "latency_jitter_ms": 30})
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAYBOOK)
    extra = _extra_vars(fault_endpoint, fleet, tmp_path)
    ansible_playbook = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
    args = [ansible_playbook, "-i", "localhost,", "-c", "local", str(playbook), "-e", json.dumps(extra)]
    env = ansible_env(fault_endpoint, collections_path, str(tmp_path))
    control(fault_endpoint, "/_local/calls", "DELETE")
    process = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    creates = ("CreateKeysAndCertificate", "CreateCertificateFromCsr")
    deadline = time.monotonic() + 120
    killed = False
    try:
        while time.monotonic() < deadline and process.poll() is None:
            if sum(1 for c in _calls(fault_endpoint) if c in creates) >= 8:
                tree = _kill_tree(process.pid)
                killed = True
                break
            time.sleep(0.05)
    finally:
        if process.poll() is None and not killed:
            _kill_tree(process.pid)
        process.wait(timeout=30)
    assert killed, "the run ended before it could be killed mid-way"
    # The module process (a grandchild of ansible-playbook) was among those killed, and none survived.
    assert len(tree) >= 3, tree
    time.sleep(0.2)
    assert [pid for pid in tree if os.path.exists(f"/proc/{pid}") and _alive(pid)] == []
    time.sleep(1)  # let calls in flight at the kill finish on the endpoint
    # The kill left the fleet incomplete: the check must see that (else the re-run proves nothing).
    interrupted = _check(fault_endpoint, fleet)
    assert not interrupted["ok"]
    print("after the kill:", {k: v for k, v in interrupted.items() if k != "problems"})

    result = run_playbook(str(playbook), fault_endpoint, collections_path, str(tmp_path), extra)
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-3000:]
    assert recap(result.stdout)["failed"] == 0
    state = _check(fault_endpoint, fleet)
    rerun_report = json.loads((tmp_path / "report.json").read_text())
    rerun = rerun_report["summary"]
    print("interrupted orphans:", interrupted["orphan_ids"], "now:", state["orphan_ids"])
    print("deleted:", rerun_report["orphaned_certificates_deleted"])
    print("re-run:", {k: rerun[k] for k in ("created", "updated", "unchanged", "orphaned_certificates_deleted")})
    # A certificate of an AWS-keys call the kill cut off (its key never reached the disk) cannot be proven this
    # fleet's: it is reported and kept, INACTIVE and attached to nothing; every other orphan was deleted.
    kept = rerun_report["orphaned_certificates_kept"]
    print("kept:", kept)
    assert set(kept) <= set(interrupted["orphan_ids"])
    _assert_exact_but_kept(state, kept)
    # No temporary key/certificate files left behind in the device directories.
    leftovers = [
        name
        for device in fleet["devices"]
        if os.path.isdir(os.path.join(fleet["output_dir"], device["name"]))
        for name in os.listdir(os.path.join(fleet["output_dir"], device["name"]))
        if name.endswith(".tmp") or name.startswith(".fleet-pending")
    ]
    assert leftovers == []


ROTATION_PLAYBOOK = """
- name: Fleet rotation under faults and a SIGKILL
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Apply the fleet
      iotfleet.provisioning.fleet:
        endpoint_url: "{{ local_iot_endpoint }}"
        region: us-east-1
        access_key: testing
        secret_key: testing
        devices_file: "{{ devices_file }}"
        fleet_group: "{{ fleet_group }}"
        output_dir: "{{ fleet_out }}"
        report_path: "{{ report_path }}"
        rotation: "{{ rotation | default(omit) }}"
"""


def _killed_after(url: str, args: list, env: dict, operation: str, count: int) -> None:
    """Run ansible-playbook and SIGKILL its whole tree once the endpoint saw ``count`` calls of ``operation``."""
    control(url, "/_local/calls", "DELETE")
    process = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    deadline, killed = time.monotonic() + 120, False
    try:
        while time.monotonic() < deadline and process.poll() is None:
            if _calls(url).count(operation) >= count:
                _kill_tree(process.pid)
                killed = True
                break
            time.sleep(0.05)
    finally:
        if process.poll() is None and not killed:
            _kill_tree(process.pid)
        process.wait(timeout=30)
    assert killed, f"the run ended before {count} {operation} calls"
    time.sleep(1)  # calls in flight at the kill finish on the endpoint


def test_fleet_rotation_killed_in_each_step_and_rerun(fault_endpoint, collections_path, tmp_path):
    """csr devices rotated under 5% faults (dropped answers included), each step killed mid-way and run again:
    no orphaned certificate, and (from the endpoint's record of every state change) never a device without an
    ACTIVE certificate."""
    sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
    from certificate_timeline import initial_state, replay

    _fresh(fault_endpoint)
    control(fault_endpoint, "/_local/traffic", "POST", {"fault_rate": 0})
    iot = fleet_check.client(fault_endpoint)
    iot.create_policy(policyName="rk-policy", policyDocument=POLICY_DOCUMENT)
    names = [f"rk-{i:02d}" for i in range(8)]
    devices_file = tmp_path / "fleet.jsonl"
    devices_file.write_text(
        "".join(json.dumps({"name": n, "certificate": "csr", "policies": ["rk-policy"]}) + "\n" for n in names)
    )
    out = tmp_path / "out"
    extra = {
        "local_iot_endpoint": fault_endpoint,
        "devices_file": str(devices_file),
        "fleet_group": "rk-fleet",
        "fleet_out": str(out),
        "report_path": str(tmp_path / "report.json"),
    }
    playbook = tmp_path / "rotate.yml"
    playbook.write_text(ROTATION_PLAYBOOK)

    def complete(variables: dict) -> None:
        result = run_playbook(str(playbook), fault_endpoint, collections_path, str(tmp_path), variables)
        assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-3000:]

    complete(extra)  # the fleet, without faults
    state = initial_state(iot, names)
    old = {n: sorted(state["attached"][n]) for n in names}
    assert all(len(ids) == 1 for ids in old.values())
    time.sleep(1.0)  # requested_on has whole seconds: the old certificates were made before it, the new after
    rule = {"devices": names, "requested_on": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())}
    time.sleep(1.0)
    control(fault_endpoint, "/_local/traffic", "DELETE")  # faults back on
    control(fault_endpoint, "/_local/traffic", "POST", {"latency_ms": 60, "latency_jitter_ms": 30})
    ansible_playbook = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
    env = ansible_env(fault_endpoint, collections_path, str(tmp_path))
    base = [ansible_playbook, "-i", "localhost,", "-c", "local", str(playbook)]
    effects = []

    _killed_after(
        fault_endpoint, [*base, "-e", json.dumps({**extra, "rotation": rule})], env, "CreateCertificateFromCsr", 3
    )
    effects += control(fault_endpoint, "/_local/calls")["effects"]
    # The kill left step 1 unfinished (else the re-run proves nothing).
    assert len([n for n, ids in initial_state(iot, names)["attached"].items() if len(ids) >= 2]) < len(names)
    control(fault_endpoint, "/_local/calls", "DELETE")
    complete({**extra, "rotation": rule})
    effects += control(fault_endpoint, "/_local/calls")["effects"]
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["failures"] == []
    assert report["orphaned_certificates_kept"] == []  # csr: every lost answer is proven by its next/ key
    new = {n: fleet_check.cert_id((out / n / "next" / "certificate.pem.crt").read_bytes()) for n in names}
    confirmed = tmp_path / "confirmed.json"
    confirmed.write_text(json.dumps(new))
    retire = {**rule, "confirmed_file": str(confirmed)}

    _killed_after(fault_endpoint, [*base, "-e", json.dumps({**extra, "rotation": retire})], env, "UpdateCertificate", 3)
    effects += control(fault_endpoint, "/_local/calls")["effects"]
    assert [n for n, ids in initial_state(iot, names)["attached"].items() if len(ids) >= 2]  # step 2 unfinished
    control(fault_endpoint, "/_local/calls", "DELETE")
    complete({**extra, "rotation": retire})
    effects += control(fault_endpoint, "/_local/calls")["effects"]

    timeline = replay(state, effects)
    assert timeline["violations"] == []
    assert timeline["things"] == 8 and timeline["least_active"] >= 1
    assert timeline["final_active"] == {n: [new[n]] for n in names}
    certificates = {c["certificateId"] for c in iot.list_certificates(pageSize=250)["certificates"]}
    assert certificates == set(new.values())  # the old ones deleted, no orphan of either step
    assert not {ids[0] for ids in old.values()} & certificates
    for name in names:
        assert sorted(os.listdir(out / name)) == ["certificate.pem.crt", "private.pem.key"]
    traffic = _traffic_counters(fault_endpoint)
    assert sum(traffic["fault_kinds"].values()) > 0, traffic  # the faults did happen
