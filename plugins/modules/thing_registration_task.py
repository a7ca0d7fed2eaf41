#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: thing_registration_task
short_description: Provision many AWS IoT devices with one bulk thing registration task
version_added: 0.1.0
description:
  - Renders a provisioning template for every device and plans it against the account, without changing anything.
    Devices already provisioned as the template says are left out, so a second run starts no task and
    makes no duplicate.
  - The remaining devices go into one JSON-lines input file (one parameter object per device), uploaded to
    O(bucket) and run with C(StartThingRegistrationTask). The module waits for the task, reads its RESULTS and
    ERRORS reports and maps each line back to its device; certificates are written to
    C(<output_dir>/<device>/certificate.pem.crt), errors are listed with the device name and line.
  - With O(csr_parameter), a private key is made for each device in C(<output_dir>/<device>/private.pem.key)
    (0600, kept on later runs) and its CSR is passed in that template parameter; the key never leaves the host.
  - A device that already has its certificate but whose thing differs from the template is updated with one
    C(RegisterThing) naming that certificate, because a task line would make AWS issue a second certificate.
  - AWS runs one registration task per account at a time; a running task is reported by its id before
    anything is uploaded.
  - The task fails at the end when more than O(max_failures) devices failed (in planning or in the task).
options:
  template_body:
    description:
      - The provisioning template, as a dict or a JSON or YAML string. Mutually exclusive with O(template_name).
    type: raw
  template_name:
    description:
      - Use the default version of this provisioning template. Mutually exclusive with O(template_body).
    type: str
  devices:
    description:
      - One map of template parameters per device. Values are sent as strings.
      - Mutually exclusive with O(devices_file).
    type: list
    elements: dict
  devices_file:
    description:
      - A file of parameter maps on the host that runs the module, by its extension - C(.jsonl)/C(.ndjson)
        (one JSON object per line), C(.json) (a list, or JSON lines), C(.yml)/C(.yaml) (a list, or a map with
        C(devices)), or C(.csv) (a header row of parameter names; an empty cell leaves the parameter unset).
      - Mutually exclusive with O(devices).
    type: path
  name_parameter:
    description:
      - The parameter that names each device (its thing name). Every device must give it; names are unique.
    type: str
    default: ThingName
  csr_parameter:
    description:
      - "The template parameter that takes the device's CSR (C(CertificateSigningRequest) C({\"Ref\": NAME}))."
      - The module makes a key per device in O(output_dir) and fills this parameter. Requires O(output_dir).
    type: str
  output_dir:
    description:
      - Where each device gets a directory named after it, with its private key (with O(csr_parameter)) and
        the certificate AWS issued.
    type: path
  key_type:
    description: The type of the device keys made with O(csr_parameter).
    type: str
    choices: [EC, RSA]
    default: EC
  curve:
    description: The curve of EC device keys.
    type: str
    choices: [P-256, P-384]
    default: P-256
  key_size:
    description: The size of RSA device keys, in bits.
    type: int
    default: 2048
  bucket:
    description:
      - The existing S3 bucket the input file is uploaded to. AWS IoT reads it with O(role_arn); the module's
        credentials need C(s3:PutObject) on it.
    type: str
    required: true
  key_prefix:
    description:
      - The prefix of the input file's S3 key. The file is named by a hash of its content
        (C(<key_prefix><hash>.jsonl)), so the role needs read access on C(<key_prefix>*).
    type: str
    default: iotfleet/registration-tasks/
  role_arn:
    description:
      - The IAM role AWS IoT assumes to read the input file and provision the devices
        (see M(iotfleet.provisioning.provisioning_role)).
    type: str
    required: true
  wait:
    description:
      - Wait for the task to finish and read its reports. With V(false) the module returns once the task has
        started; a later run (once the task has finished) writes the certificates and reports what is left.
    type: bool
    default: true
  wait_timeout:
    description: How many seconds to wait for the task. The module fails when the task is still running then.
    type: int
    default: 600
  poll_interval:
    description: Seconds between two progress reads (C(DescribeThingRegistrationTask)).
    type: int
    default: 5
  max_failures:
    description: How many devices may fail before the module fails.
    type: int
    default: 0
extends_documentation_fragment:
  - iotfleet.provisioning.aws
  - iotfleet.provisioning.declared_policies
  - iotfleet.provisioning.attributes
attributes:
  check_mode:
    support: full
    details: Returns the per-device plan and the size of the input file that would be uploaded; no key is written.
  diff_mode:
    support: full
    details: Per device, the resources the template would create or change.
  idempotent:
    support: full
  action_group:
    support: full
    membership:
      - iotfleet.provisioning.aws
notes:
  - "IAM permissions: C(iot:DescribeThing), C(iot:ListThingGroupsForThing), C(iot:ListThingPrincipals),
    C(iot:DescribeCertificate), C(iot:ListAttachedPolicies), C(iot:GetPolicy), C(iot:ListThingRegistrationTasks),
    C(iot:StartThingRegistrationTask), C(iot:DescribeThingRegistrationTask),
    C(iot:ListThingRegistrationTaskReports), C(iot:RegisterThing) (updates of devices that have their
    certificate), C(iot:DescribeProvisioningTemplate) (with O(template_name)), C(s3:PutObject) on the input key,
    and C(iam:PassRole) on O(role_arn)."
  - Report files are fetched from the links AWS returns with a plain HTTPS GET that honours O(validate_certs)
    and O(aws_ca_bundle).
  - Devices are planned one by one (a few read calls each); for very large fleets prefer M(iotfleet.provisioning.fleet).
author:
  - iotfleet.provisioning developers (@iotfleet)
"""

EXAMPLES = r"""
- name: Register three devices with CSRs made locally
  iotfleet.provisioning.thing_registration_task:
    template_body:
      Parameters:
        ThingName: {Type: String}
        CSR: {Type: String}
      Resources:
        thing:
          Type: AWS::IoT::Thing
          Properties:
            ThingName: {Ref: ThingName}
        certificate:
          Type: AWS::IoT::Certificate
          Properties:
            CertificateSigningRequest: {Ref: CSR}
            Status: ACTIVE
        policy:
          Type: AWS::IoT::Policy
          Properties:
            PolicyName: device-policy
    devices:
      - {ThingName: sensor-001}
      - {ThingName: sensor-002}
      - {ThingName: sensor-003}
    csr_parameter: CSR
    output_dir: /srv/fleet/devices
    bucket: my-fleet-bucket
    role_arn: arn:aws:iam::123456789012:role/iot-bulk-registration
  register: bulk

- name: Devices from a CSV file, with a stored template, tolerating two failures
  iotfleet.provisioning.thing_registration_task:
    template_name: factory-batch
    devices_file: /srv/fleet/batch-42.csv
    csr_parameter: CSR
    output_dir: /srv/fleet/devices
    bucket: my-fleet-bucket
    key_prefix: batches/42/
    role_arn: arn:aws:iam::123456789012:role/iot-bulk-registration
    max_failures: 2
"""

RETURN = r"""
task_id:
  description: The id of the registration task started, or null when no device needed one (or in check mode).
  returned: always
  type: str
  sample: 9f1c3d3e-8e43-4c4f-9d6e-2b7d8a1f0c11
status:
  description: The task's last status (C(InProgress), C(Completed), C(Failed), C(Cancelled)), null without a task.
  returned: always
  type: str
  sample: Completed
success_count:
  description: Lines the task registered (DescribeThingRegistrationTask C(successCount)).
  returned: when a task was waited for
  type: int
  sample: 5
failure_count:
  description: Lines the task failed (DescribeThingRegistrationTask C(failureCount)).
  returned: when a task was waited for
  type: int
  sample: 0
timed_out:
  description: True when the task was still running after O(wait_timeout).
  returned: when the wait timed out
  type: bool
task_message:
  description: The message of a task that ended C(Failed).
  returned: when the task failed as a whole
  type: str
progress:
  description: The task's progress, one entry each time it changed while the module waited.
  returned: always
  type: list
  elements: dict
  contains:
    status:
      description: Task status.
      type: str
    percentage_progress:
      description: 0 to 100.
      type: int
    success_count:
      description: Lines registered so far.
      type: int
    failure_count:
      description: Lines failed so far.
      type: int
input:
  description: The input file uploaded (or that would be, in check mode).
  returned: always
  type: dict
  contains:
    bucket:
      description: The bucket.
      type: str
    key:
      description: The S3 key, null when no device needs the task.
      type: str
    lines:
      description: Devices in the file.
      type: int
    bytes:
      description: Size of the file.
      type: int
counts:
  description: Devices by planned action, and how many failed.
  returned: always
  type: dict
  contains:
    total:
      description: All devices given.
      type: int
    none:
      description: Already provisioned as the template says; left out.
      type: int
    register:
      description: Sent to the registration task.
      type: int
    update:
      description: Updated with RegisterThing naming their existing certificate.
      type: int
    failed:
      description: Failed in planning, in the task or in RegisterThing.
      type: int
  sample: {total: 5, none: 0, register: 5, update: 0, failed: 0}
devices:
  description: One entry per device, in input order.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The device name (O(name_parameter)).
      type: str
    line:
      description: The device's position in O(devices) (1-based) or its line in O(devices_file).
      type: int
    input_line:
      description: The device's line in the uploaded input file, null when it was not sent.
      type: int
    action:
      description: C(none), C(register), C(update) or C(failed) (planning failed).
      type: str
    status:
      description: C(unchanged), C(planned) (check mode), C(submitted) (not waited for), C(registered),
        C(updated) or C(failed).
      type: str
    changes:
      description: The template's resources that would be created or changed, as C(resource.logical_id -> action).
      type: list
      elements: str
    certificate_id:
      description: The device's certificate id, when known.
      type: str
    error:
      description: Why the device failed, with the input line for task errors.
      type: str
  sample:
    - name: sensor-001
      line: 1
      input_line: 1
      action: register
      status: registered
      changes: ["thing.thing: create", "certificate.certificate: create"]
      certificate_id: 3f2a...
      error: null
failed_devices:
  description: The devices that failed, with name, line, input_line and error.
  returned: always
  type: list
  elements: dict
diff:
  description: Per device to register or update, the plan's before and after.
  returned: in diff mode
  type: dict
"""

from ansible_collections.iotfleet.provisioning.plugins.module_utils.aws import IoTModule
from ansible_collections.iotfleet.provisioning.plugins.module_utils.registration_task.run import (
    ensure_present,
    failure_message,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.registration_task.spec import validate_task
from ansible_collections.iotfleet.provisioning.plugins.module_utils.registration_task.task import http_get
from ansible_collections.iotfleet.provisioning.plugins.module_utils.validation import DECLARED_POLICIES_OPTION


def main() -> None:
    module = IoTModule(
        argument_spec=dict(
            template_body=dict(type="raw"),
            template_name=dict(type="str"),
            devices=dict(type="list", elements="dict"),
            devices_file=dict(type="path"),
            name_parameter=dict(type="str", default="ThingName"),
            csr_parameter=dict(type="str"),
            output_dir=dict(type="path"),
            key_type=dict(type="str", choices=["EC", "RSA"], default="EC"),
            curve=dict(type="str", choices=["P-256", "P-384"], default="P-256"),
            key_size=dict(type="int", default=2048),
            bucket=dict(type="str", required=True),
            key_prefix=dict(type="str", default="iotfleet/registration-tasks/", no_log=False),
            role_arn=dict(type="str", required=True),
            wait=dict(type="bool", default=True),
            wait_timeout=dict(type="int", default=600),
            poll_interval=dict(type="int", default=5),
            max_failures=dict(type="int", default=0),
            declared_resources=DECLARED_POLICIES_OPTION,
        ),
        mutually_exclusive=[["template_body", "template_name"], ["devices", "devices_file"]],
        required_one_of=[["template_body", "template_name"], ["devices", "devices_file"]],
        required_by={"csr_parameter": "output_dir"},
    )
    params = module.params

    def apply() -> dict:
        desired = validate_task(params)
        validate_certs, ca_bundle = params["validate_certs"], params.get("aws_ca_bundle")
        done = ensure_present(
            module.client("iot"),
            lambda: module.client("s3"),
            desired,
            module.check_mode,
            fetch=lambda url: http_get(url, validate_certs, ca_bundle),
        )
        full = module.result(done)
        message = failure_message(done.extra, desired.max_failures)
        if message:
            module.fail_json(msg=message, **full)
        return full

    module.run(apply)


if __name__ == "__main__":
    main()
