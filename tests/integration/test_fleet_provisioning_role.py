"""The fleet_provisioning role through playbooks/fleet_provisioning.yml, proven by the real AWS IoT Device SDK.

One sequence of runs on one endpoint (each run is costly, so each is shared by several assertions):
a first ``--check`` on an empty account (no mutating call), the set-up, the same again (changed=0), a claim
rotation (a new claim while the old one still works) and the retirement of the old claim. Between the runs,
devices use the claim bundle the role wrote with awsiotsdk's ``IotIdentityClient`` (CreateCertificateFromCsr and
CreateKeysAndCertificate), reconnect with their new certificate and publish where the device policy allows; the
claim is refused everything else; a refusing pre-provisioning hook (the endpoint's stand-in) and a disabled
template refuse devices; a trusted-user claim from the provisioning_claim module (run by the same playbook)
provisions a device too.
"""

from __future__ import annotations

import json
import os
import stat
import sys
import time

import pytest
from harness import REPO, control, iot_client, recap, reset_endpoint, run_playbook

sys.path.insert(0, os.path.join(REPO, "tests", "local_iot"))

from device_sdk import Device, DeviceRefused, dataplane_info
from identity_sdk import provision

TEMPLATE = "fp-role"
HOOK = "arn:aws:lambda:us-east-1:123456789012:function:fp-allow-serials"
ARN = "arn:aws:iot:us-east-1:123456789012"
READ_ONLY = ("Describe", "List", "Get")

# The role's playbook, then the trusted-user flow: an installer's claim for the template the role made.
PLAYBOOK = """
- ansible.builtin.import_playbook: {playbook}

- name: A trusted-user claim for the template
  hosts: localhost
  gather_facts: false
  module_defaults:
    group/iotfleet.provisioning.aws:
      endpoint_url: "{{{{ iot_endpoint_url }}}}"
      region: us-east-1
  tasks:
    - name: A claim of an installer's app, kept while it has two minutes left
      iotfleet.provisioning.provisioning_claim:
        template_name: {template}
        certificate_path: "{{{{ trusted_dir }}}}/claim.pem.crt"
        private_key_path: "{{{{ trusted_dir }}}}/claim.pem.key"
        min_valid_seconds: 120
      when: trusted_dir is defined  # only in the runs that check it: each task costs time
"""


def _hook(endpoint: str, allow: bool) -> None:
    answer = {"allowProvisioning": allow}
    control(endpoint, "/_local/provisioning-hooks", "POST", {"targetArn": HOOK, "answer": answer})


def _refusals(endpoint: str, kind: str, count: int) -> list[str]:
    """The endpoint records a refusal on its own thread, a moment after the device saw it."""
    deadline = time.monotonic() + 5
    while True:
        reasons = [e["reason"] for e in dataplane_info(endpoint)["events"] if e["event"] == kind]
        if len(reasons) >= count or time.monotonic() > deadline:
            return reasons
        time.sleep(0.05)


def test_fleet_provisioning_role_and_devices_by_claim(local_iot_endpoint: str, collections_path: str, tmp_path) -> None:
    endpoint = local_iot_endpoint
    reset_endpoint(endpoint)
    control(endpoint, "/_local/provisioning-hooks", "DELETE")
    control(endpoint, "/_local/dataplane", "DELETE")
    info = dataplane_info(endpoint)
    out, trusted = tmp_path / "fleet", tmp_path / "installer"
    trusted.mkdir(mode=0o700)
    playbook = tmp_path / "play.yml"
    playbook.write_text(
        PLAYBOOK.format(playbook=os.path.join(REPO, "playbooks", "fleet_provisioning.yml"), template=TEMPLATE)
    )
    variables = {
        "iot_endpoint_url": endpoint,
        "iot_region": "us-east-1",
        "fleet_provisioning_output_dir": str(out),
        "fleet_provisioning_template_name": TEMPLATE,
        "fleet_provisioning_role_name": "fp-role-provisioning",
        "fleet_provisioning_device_policy_name": "fp-role-device",
        "fleet_provisioning_thing_groups": ["fp-fleet"],
        "fleet_provisioning_device_configuration": {
            "topic": {"Fn::Join": ["", ["devices/device-", {"Ref": "SerialNumber"}, "/telemetry"]]}
        },
        "fleet_provisioning_pre_provisioning_hook_arn": HOOK,
        "fleet_provisioning_root_ca_path": info["caFile"],
        "fleet_provisioning_device_certificate_requests": ["csr", "create_keys"],
    }

    def play(check: bool = False, **extra: object) -> dict[str, int]:
        result = run_playbook(
            str(playbook),
            endpoint,
            collections_path,
            str(tmp_path),
            {**variables, **extra},
            extra_env={"ANSIBLE_PIPELINING": "true"},
            check=check,
        )
        assert result.returncode == 0, result.stdout[-15000:] + result.stderr[-3000:]
        assert "PRIVATE KEY" not in result.stdout + result.stderr
        return recap(result.stdout)

    # A first --check on an empty account: a plan, and nothing but reads.
    assert play(check=True)["changed"] > 0
    calls = control(endpoint, "/_local/calls")["calls"]
    assert calls and all(call.startswith(READ_ONLY) for call in calls), calls
    iot = iot_client(endpoint)
    assert iot.list_policies()["policies"] == [] and iot.list_provisioning_templates()["templates"] == []
    assert iot_client(endpoint, "iam").list_roles()["Roles"] == [] and not out.exists()

    assert play(trusted_dir=str(trusted))["changed"] > 0
    assert play(trusted_dir=str(trusted))["changed"] == 0  # the trusted-user claim, still valid, is kept too

    # What the role made: a template with the hook, the claim policy with exactly the claim's needs.
    template = iot.describe_provisioning_template(templateName=TEMPLATE)
    assert (template["type"], template["enabled"]) == ("FLEET_PROVISIONING", True)
    assert template["preProvisioningHook"]["targetArn"] == HOOK
    body = json.loads(template["templateBody"])
    assert body["Resources"]["policy"]["Properties"] == {"PolicyName": "fp-role-device"}
    claim_policy = json.loads(iot.get_policy(policyName=f"{TEMPLATE}-claim")["policyDocument"])
    topics = ["$aws/certificates/create", "$aws/certificates/create-from-csr"]
    topics.append(f"$aws/provisioning-templates/{TEMPLATE}/provision")
    assert claim_policy["Statement"] == [
        {"Effect": "Allow", "Action": "iot:Connect", "Resource": f"{ARN}:client/provision-*"},
        {
            "Effect": "Allow",
            "Action": ["iot:Publish", "iot:Receive"],
            "Resource": [f"{ARN}:topic/{t}/*" for t in topics],
        },
        {"Effect": "Allow", "Action": "iot:Subscribe", "Resource": [f"{ARN}:topicfilter/{t}/*" for t in topics]},
    ]

    # The bundle: claim certificate and key (0600), the root CA, the SDK sample's configuration.
    bundle = out / "bundle"
    assert os.readlink(bundle) == "claims/1"
    assert stat.S_IMODE(os.stat(bundle / "claim.pem.key").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(out / "claims" / "1").st_mode) == 0o700
    with open(info["caFile"]) as handle:
        assert (bundle / "AmazonRootCA1.pem").read_text() == handle.read()
    config = json.loads((bundle / "config.json").read_text())
    endpoint_address = iot.describe_endpoint(endpointType="iot:Data-ATS")["endpointAddress"]
    assert config == {
        "endpoint": endpoint_address,
        "port": 8883,
        "cert": "claim.pem.crt",
        "key": "claim.pem.key",
        "ca_file": "AmazonRootCA1.pem",
        "client_id": "provision-<unique per device>",
        "template_name": TEMPLATE,
        "template_parameters": json.dumps({"SerialNumber": "<per device>"}),
        "certificate_requests": ["csr", "create_keys"],
    }
    device_info = {**info, "caFile": str(bundle / config["ca_file"])}
    claim = (str(bundle / config["cert"]), str(bundle / config["key"]))

    def device(serial: str, use_csr: bool = True, files: tuple[str, str] = claim, client: str = "") -> object:
        return provision(
            device_info,
            *files,
            client or f"provision-{serial}",
            TEMPLATE,
            {"SerialNumber": serial},
            str(tmp_path / "devices"),
            use_csr=use_csr,
        )

    # Devices by claim, both ways of getting a certificate; the hook (a stand-in) allows them.
    _hook(endpoint, True)
    for serial, use_csr in (("sn-a", True), ("sn-b", False)):
        got = device(serial, use_csr)
        assert (got.outcome, got.thing_name) == ("accepted", f"device-{serial}"), got
        assert got.device_configuration == {"topic": f"devices/device-{serial}/telemetry"}
        described = iot.describe_certificate(certificateId=got.certificate_id)["certificateDescription"]
        assert described["status"] == "ACTIVE"
        assert iot.list_thing_groups_for_thing(thingName=got.thing_name)["thingGroups"][0]["groupName"] == "fp-fleet"
        with Device(device_info, got.cert_file, got.key_file, got.thing_name) as online:
            online.subscribe(f"devices/{got.thing_name}/#")
            online.publish(f"devices/{got.thing_name}/telemetry", b"online")
            assert online.receive() == (f"devices/{got.thing_name}/telemetry", b"online")
            with pytest.raises(DeviceRefused):
                online.publish("devices/device-sn-other/telemetry", b"not mine")
    assert [call["request"]["parameters"] for call in control(endpoint, "/_local/provisioning-hooks")["calls"]] == [
        {"SerialNumber": "sn-a"},
        {"SerialNumber": "sn-b"},
    ]

    # The claim can do nothing else: not connect as a device, not publish or subscribe outside provisioning.
    with pytest.raises(DeviceRefused):
        Device(device_info, *claim, "device-sn-a").connect()
    assert "iot:Connect on client/device-sn-a IMPLICIT_DENY" in _refusals(endpoint, "refused", 1)[-1]
    with Device(device_info, *claim, "provision-probe") as probe:
        with pytest.raises(DeviceRefused):
            probe.subscribe("devices/#")
        with pytest.raises(DeviceRefused):
            probe.publish("devices/device-sn-a/telemetry", b"forged")
    assert any(
        "iot:Publish on topic/devices/device-sn-a/telemetry" in r for r in _refusals(endpoint, "disconnected", 1)
    )

    # A hook that refuses refuses the device: no thing, its certificate never activated.
    _hook(endpoint, False)
    refused = device("sn-c")
    assert (refused.outcome, refused.error_code) == ("rejected", "AccessDenied")
    assert iot.list_things()["things"] and "device-sn-c" not in [t["thingName"] for t in iot.list_things()["things"]]
    _hook(endpoint, True)

    # The trusted-user claim the provisioning_claim module wrote provisions a device within its lifetime.
    by_installer = device(
        "sn-d", files=(str(trusted / "claim.pem.crt"), str(trusted / "claim.pem.key")), client="app-d"
    )
    assert (by_installer.outcome, by_installer.thing_name) == ("accepted", "device-sn-d"), by_installer

    # Rotation: a new claim in the bundle, the old one still provisions devices already made with it.
    old_claim = (str(out / "claims" / "1" / "claim.pem.crt"), str(out / "claims" / "1" / "claim.pem.key"))
    # The provisioning role exists now: given by ARN, as a user with a shared role would (one module less per run).
    role_arn = iot_client(endpoint, "iam").get_role(RoleName="fp-role-provisioning")["Role"]["Arn"]
    variables["fleet_provisioning_provisioning_role_arn"] = role_arn
    assert play(fleet_provisioning_claim_generation=2)["changed"] > 0
    assert os.readlink(bundle) == "claims/2"
    certificates = {c["certificateId"]: c["status"] for c in iot.list_certificates()["certificates"]}
    targets = iot.list_targets_for_policy(policyName=f"{TEMPLATE}-claim")["targets"]
    assert len(targets) == 2 and all(certificates[t.split("/")[-1]] == "ACTIVE" for t in targets)
    assert device("sn-e", files=old_claim).outcome == "accepted"

    # Retirement: the old claim is deactivated (and refused), the new one works.
    assert play(fleet_provisioning_claim_generation=2, fleet_provisioning_retire_old_claims=True)["changed"] > 0
    statuses = sorted(
        iot.describe_certificate(certificateId=t.split("/")[-1])["certificateDescription"]["status"] for t in targets
    )
    assert statuses == ["ACTIVE", "INACTIVE"]
    with pytest.raises(DeviceRefused):
        Device(device_info, *old_claim, "provision-old").connect()
    assert "is INACTIVE" in _refusals(endpoint, "refused", 2)[-1]
    assert device("sn-f").outcome == "accepted"

    # A disabled template refuses devices.
    iot.update_provisioning_template(templateName=TEMPLATE, enabled=False)
    disabled = device("sn-g")
    assert disabled.outcome == "rejected" and "disabled" in disabled.error_message
    control(endpoint, "/_local/provisioning-hooks", "DELETE")
