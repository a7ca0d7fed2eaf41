#!/usr/bin/python
# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: fleet
short_description: Make many AWS IoT devices match a list, in one task
version_added: 0.1.0
description:
  - Reconciles a fleet of devices (things, thing group memberships, certificates and policy attachments)
    with a list given inline or in a file, in one process.
  - The current state is read with paged list calls (C(ListThingsInThingGroup) per named group, C(ListThings),
    C(ListCertificates), C(ListTargetsForPolicy) per named policy) plus C(ListThingPrincipals) only for
    existing things that should carry a certificate; the plan is computed from that snapshot.
  - Devices are applied concurrently, each in dependency order (thing, groups, certificate, attach,
    policies, activate), with per-API rate budgets that start at AWS's default TPS quotas and halve on
    throttling; throttles, 5xx answers and dropped connections are retried with jittered backoff.
  - A certificate from a CSR (V(csr)) is created ACTIVE, its key on disk before the call; one with AWS-made
    keys (V(aws_keys)) or a registered PEM is created INACTIVE and activated last, once attached and given its
    policies (AWS's key passes through this run only once). The private key and certificate are written before
    the next step.
  - "The calls a device needs, and the fleet makes no other: cold device with V(csr), C(CreateThing),
    C(AddThingToThingGroup) per group, C(CreateCertificateFromCsr), C(AttachThingPrincipal), C(AttachPolicy) per
    policy; with V(aws_keys) also C(UpdateCertificate) (activate). Nothing to change, no per-device mutating
    call (the reads are shared list calls, plus C(ListThingPrincipals) per existing device with a certificate).
    Attribute or type change, one C(UpdateThing). Group change, one C(AddThingToThingGroup) or
    C(RemoveThingFromThingGroup) per group. Prune, per certificate C(ListPrincipalThings),
    C(UpdateCertificate) (deactivate), C(DetachThingPrincipal), C(ListAttachedPolicies), C(DetachPolicy) per
    policy and C(DeleteCertificate) (a certificate another thing uses is only detached), then
    C(RemoveThingFromThingGroup) per group and C(DeleteThing)."

  - An existing device key is never replaced. A device with V(aws_keys) whose key file exists but whose
    certificate is neither in its certificate file nor found (attached to the thing, or left by an interrupted
    run, with the key's public key) fails with a message naming the file; a key file readable by others is set
    to mode 0600 and reported as a change (as the M(iotfleet.provisioning.csr) module does).
  - Orphan clean-up. Before every attempt of a certificate-creating call, a record in the device's directory
    (C(.fleet-pending.json)) notes the call, its time and its attempts; a call whose every attempt was
    answered leaves no record. A record left behind (an answer lost to a dropped connection or a 5xx, a
    killed run, files that could not be written) lets the same run, or the next one, delete the certificates
    it can prove this fleet made, and only those. A certificate is deleted only when it is INACTIVE (an
    ACTIVE one only within the window of a V(csr) call, which makes it ACTIVE, and carrying that device's own
    key; it is deactivated first), attached to no thing, unknown to every device's files, created within that
    call's own window (from its start to its end, give or take 120 s of clock skew), and either its id was
    returned to the call, or its public key is one of this fleet's device keys (V(csr), and V(aws_keys) whose key was
    written). Anything else is left alone. A certificate with AWS-made keys whose answer was lost can never be
    proven this fleet's (its key exists nowhere, and it looks like one another tool or fleet made in the same
    window and has not attached yet), so such candidates are counted in C(orphaned_certificates_kept), listed in
    the report and named in a warning, for a person to check and remove (they are INACTIVE, attached to
    nothing and unusable). V(csr) devices never leave one behind unproven.
  - A device whose key is on disk but whose certificate file is not (a run killed during a certificate call,
    or between writing the key and the certificate) gets its certificate back by the key's public key when
    the call made one (the certificate file is written; it is attached and activated).
  - AWS, not the files of this controller, says what exists. A device with V(csr) or V(aws_keys) whose key
    and certificate files are both missing from O(output_dir) (a fresh CI runner, another controller) but whose
    thing has a certificate attached is in sync on that certificate (its key is on the device); no certificate
    is made for lack of files. Its policies are converged on it, an INACTIVE one is activated (it is the
    device's certificate), and with several attached the ACTIVE one (the newest) is used and the others are
    left alone. The plan, the diff (C(key) in the certificate) and the report (column C(key)) say
    C(not on this controller); see O(replace_lost_keys) to replace such certificates.
  - A device that fails does not stop the others; the task fails at the end when more than
    O(max_failures) devices failed. When some failed but no more than O(max_failures), the task warns with
    their number and the first names and errors.
options:
  devices:
    description:
      - The devices, each a dictionary with the keys below. Mutually exclusive with O(devices_file).
      - C(name) (required) the thing name.
      - C(thing_type) the thing type; unset leaves the remote type alone.
      - C(attributes) a dictionary; it replaces the thing's attributes unless C(purge_attributes=false).
      - C(thing_groups) a list of thing groups besides O(fleet_group); the device is removed from the other
        groups named anywhere in the input; groups the input never names are left alone.
        Missing groups are created.
      - Without C(thing_type) a device may have at most 3 attributes (the AWS limit for a thing without a type).
      - C(certificate) one of V(aws_keys) (AWS makes the key, written to O(output_dir)), V(csr) (the key is
        made locally in O(output_dir) and only the CSR is sent), V(pem) (with C(certificate_pem) or
        C(certificate_pem_path), registered without a CA), V(none) (default; principals are left alone).
      - C(policies) a list of existing policy names attached to the device's certificate; policies named
        elsewhere in the input but not here are detached; unset leaves the attachments alone.
      - C(billing_group) the billing group the thing is in (a thing is in at most one); V("") in none; unset
        leaves it alone. It must exist (M(iotfleet.provisioning.billing_group)). Read with
        C(ListThingsInBillingGroup) per named billing group; a device in none of them whose billing group is set
        or cleared is described (C(DescribeThing)) to find the group it leaves first
        (C(RemoveThingFromBillingGroup), then C(AddThingToBillingGroup)).
      - C(rotation_csr_path) (V(csr) devices) a CSR the device made from a new key for its next certificate;
        when O(rotation) selects the device, step 1 sends this CSR instead of making a key in O(output_dir). The
        key must be one AWS IoT accepts and meet O(rotation.key_minimum).
    type: list
    elements: dict
  devices_file:
    description:
      - A file with the devices. V(.csv) with a header (columns named as the device keys; C(thing_groups)
        and C(policies) separated by C(;); attributes as columns C(attributes.NAME)), V(.yml)/V(.yaml) (a list,
        or a dictionary with a C(devices) list), V(.json) (a list) or V(.jsonl) (one object per line).
      - "In a CSV file an empty cell means not given: the device takes the value of O(defaults), or the remote
        value is left alone. The attributes of a row are its non-empty C(attributes.NAME) cells; with
        C(purge_attributes) (the default) they replace the thing's attributes, so an empty cell removes that
        attribute from a thing whose row sets others, and a row whose attribute cells are all empty leaves the
        attributes alone. A row with more or fewer cells than the header is refused with its line (quote a
        value that holds a comma)."
    type: path
  defaults:
    description:
      - Keys merged under every device (the device wins; C(attributes) merge key by key).
    type: dict
    default: {}
  fleet_group:
    description:
      - The thing group that marks the devices this fleet manages. Created if missing; every device is
        added to it. O(prune) only ever removes members of this group.
    type: str
    required: true
  output_dir:
    description:
      - Where each device's files go, C(<output_dir>/<name>/private.pem.key) (mode 0600) and
        C(<output_dir>/<name>/certificate.pem.crt). Required when a device uses V(aws_keys) or V(csr).
      - Made (mode 0700) when the first file is written; never in check mode.
      - A path inside an C(ansible_collections) tree is refused, since installing or upgrading a collection
        replaces that tree and the keys with it.
    type: path
  prune:
    description:
      - Decommission members of O(fleet_group) that are not in the input, in the safe order (certificate
        INACTIVE, detached, deleted; thing removed from its groups and deleted).
    type: bool
    default: false
  max_prune:
    description:
      - The most devices O(prune) may remove, as a count (V(5)) or a percentage of the current members of
        O(fleet_group) (V(10%)). Beyond it the task fails before any change.
      - Whatever it says, an input with no devices (an empty O(devices) list, an empty O(devices_file) or one
        holding no devices) or with none of the current members never prunes without O(prune_all); a
        O(devices_file) that cannot be read fails the task before any call.
    type: raw
    default: "10%"
  prune_all:
    description:
      - Retire the whole fleet. With O(prune=true), allow O(prune) to decommission every member of
        O(fleet_group). With an input that holds no devices (for example O(devices=[])) it removes them all,
        O(max_prune) is not applied; with devices in the input O(max_prune) still applies.
      - Without it, a prune that would remove every member (an empty or wrong input) fails before any change,
        and the message names this option. Run it with C(--check) first to see what it removes; do not leave it
        set in everyday runs.
    type: bool
    default: false
  replace_lost_keys:
    description:
      - Replace the certificate attached to a device whose key and certificate files are not in O(output_dir)
        on this controller (see above), instead of using it. The new certificate comes first (its key written
        with mode 0600), is attached, given its policies and activated; only then is each old certificate
        detached from the thing, and deactivated and deleted unless another thing uses it.
      - Use it once, on the controller that is to keep the device keys; the devices need their new keys.
    type: bool
    default: false
  declared_resources:
    description:
      - Policies, thing types and billing groups that earlier tasks of the same play create, so that a first
        C(--check) of a new fleet plans (in check mode those tasks only predict the creation, and nothing exists
        yet).
      - In check mode a policy, thing type or billing group listed here that does not exist is planned as made
        by those tasks (see C(plan.made_by_earlier_tasks)) instead of failing its devices. Outside check mode it
        must exist by the time this task runs.
      - A missing policy, thing type or billing group that is not listed fails its devices in check mode too,
        naming it.
      - Keys C(policies), C(thing_types) and C(billing_groups), each a list of names. Thing groups need no entry
        (this module creates missing ones).
    type: dict
    suboptions:
      policies:
        description: Policy names.
        type: list
        elements: str
      thing_types:
        description: Thing type names.
        type: list
        elements: str
      billing_groups:
        description: Billing group names.
        type: list
        elements: str
  certificate_expiry:
    description:
      - Warn, or fail a device, when the certificate it may be using (the oldest ACTIVE one attached to its thing)
        expires within a number of days. Each device's certificate C(not_after) and C(days_left) are in the plan
        (C(plan.expiry)), the plan file and the report whether this is set or not, as far as they are known.
      - The dates come from the device's certificate file in O(output_dir) when its id is the certificate's id
        (no call); otherwise, only when this option, O(rotation.expiring_within_days) or
        O(rotation.key_minimum) is set, from C(DescribeCertificate) (10 per second at AWS's default quota, so
        20 s per 200 devices). Without such a rule a certificate no file describes says C(validity) V(not read),
        and the run makes no call more than without this feature.
      - Certificates AWS makes (V(aws_keys), V(csr)) expire 2049-12-31T23:59:59Z; certificates signed by your CA
        (V(pem), or a CA-signed one found attached) carry their CA's dates.
    type: dict
    suboptions:
      warn_within_days:
        description:
          - A certificate expiring within this many days is named in a warning (and counted in
            C(plan.expiry.warnings), listed in the report).
        type: int
      fail_within_days:
        description:
          - A certificate expiring within this many days fails its device with a plan error naming the device,
            the certificate and its date (the other devices go on; see O(max_failures)). A device whose
            rotation is under way (O(rotation)) is warned about instead, so that the rotation can finish.
        type: int
  rotation:
    description:
      - Rotate device certificates without an outage, one safe step per run, AWS being the source of truth (a
        run on a fresh controller picks up where the last one stopped). A rotation in progress is a thing with
        two or more ACTIVE certificates attached; the newest (by creation date) is the new one.
      - "Step 1 (C(rotate: issue new certificate)), for a device the rule below selects: a new certificate beside
        the old one, with the same policies (O(devices) C(policies), or the old certificate's), attached to the
        same thing; the old certificate is untouched. V(aws_keys) devices get C(CreateKeysAndCertificate), V(csr)
        devices C(CreateCertificateFromCsr) with a new key made in O(output_dir) (EC, the smallest NIST curve
        meeting O(rotation.key_minimum.ec_bits)) or the CSR of C(rotation_csr_path). The new key (0600) and
        certificate are written to C(<output_dir>/<name>/next/) before anything else can fail (the orphan clean-up
        above covers the call): deliver them to the device from there. V(pem) devices are refused with a message
        naming the device."
      - "Then C(rotate: waiting for confirmation of <id>): no change until the NEW certificate's id is confirmed
        (O(rotation.confirmed), O(rotation.confirmed_file)). The registry does not record which certificate a
        device connected with, so the fleet never retires on a guess (time elapsed, a recent connection in fleet
        indexing: the device may have connected with the old certificate). The presence event
        C($aws/events/presence/connected/<clientId>) carries C(principalIdentifier), the certificate id the
        device connected with; an AWS IoT rule can route it to where the confirmation file is made."
      - "Step 2 (C(rotate: retire <old id>)), on a later run once confirmed: every other certificate attached to
        the thing and created before the new one goes, in the order C(UpdateCertificate) INACTIVE,
        C(DetachThingPrincipal), C(DetachPolicy) per policy, C(DeleteCertificate) (one another thing also uses
        is only detached from this thing); the new certificate is ACTIVE and attached all along, so the device
        always has an ACTIVE certificate. The intent is recorded in C(<output_dir>/<name>/.fleet-rotation.json)
        first, so a run stopped between two calls finishes them next time. Then the files of C(next/) replace
        C(private.pem.key) and C(certificate.pem.crt) (C(rotate: move the new files in place))."
      - Minimal calls per device, step 1 V(csr) C(CreateCertificateFromCsr), C(AttachThingPrincipal),
        C(AttachPolicy) per policy; V(aws_keys) C(CreateKeysAndCertificate), C(AttachThingPrincipal),
        C(AttachPolicy) per policy, C(UpdateCertificate) (activate). Step 2 C(ListPrincipalThings) (is the old
        certificate shared?), C(UpdateCertificate), C(DetachThingPrincipal), C(ListAttachedPolicies),
        C(DetachPolicy) per policy, C(DeleteCertificate). A device waiting for its confirmation costs no call
        beyond the run's usual reads.
    type: dict
    suboptions:
      expiring_within_days:
        description:
          - Select the devices whose certificate expires within this many days (dates as for
            O(certificate_expiry)).
        type: int
      devices:
        description:
          - Select these devices (names of the input) on request, as long as their certificate was created before
            O(rotation.requested_on), so the list can stay in git without rotating them again.
        type: list
        elements: str
      requested_on:
        description:
          - The date (V(2026-12-05), or an ISO 8601 time, UTC unless it says otherwise) of the request of
            O(rotation.devices). Required with it.
        type: str
      key_minimum:
        description:
          - Select the devices whose certificate's key is below a minimum, read from the certificate. A key type
            without a minimum here is accepted as it is.
        type: dict
        suboptions:
          rsa_bits:
            description:
              - The least RSA modulus size (2048 to 16384). More than 2048 is refused for V(aws_keys) devices (AWS
                makes 2048-bit keys for them, so they would rotate forever).
            type: int
          ec_bits:
            description:
              - The least EC curve size (256, 384 or 521).
            type: int
      confirmed:
        description:
          - Ids of NEW certificates confirmed in use by their devices (64 hexadecimal characters). A device name is
            refused.
        type: list
        elements: str
      confirmed_file:
        description:
          - A file (for example in git) of confirmed new certificate ids, one per line (C(#) comments), a YAML or
            JSON list of ids, or a YAML or JSON mapping of device name to its new certificate's id (or a list of ids).
        type: path
  max_failures:
    description:
      - How many devices may fail before the task fails (at the end, after every device was tried).
    type: int
    default: 0
  concurrency:
    description:
      - How many devices are worked on at the same time.
    type: int
    default: 10
  plan_path:
    description:
      - Write the full plan (every device) as JSON to this file, also in check mode. Its directory is made if
        missing (a fresh checkout).
    type: path
  report_path:
    description:
      - Write the run report as JSON to this file and a CSV (one row per device) beside it
        (same name, C(.csv) extension).
    type: path
  progress_path:
    description:
      - While the module runs, replace this file every O(progress_interval) seconds with the run's
        progress as one JSON object (C(phase), C(done) of C(total) devices, C(rate) per second,
        C(api_calls), C(throttles), C(retries), C(failed), C(elapsed)), and a last time when it ends.
      - "When the task's connection is local (C(hosts: localhost) or C(delegate_to: localhost)), the
        action plugin of this module sets a temporary file of its own and prints a progress line on the
        controller whenever it changes; set this option to keep the file where you want it instead."
    type: path
  api_rates:
    description:
      - "Calls per second per AWS operation, for example C({CreateThing: 500, ListThingPrincipals: 50}), where
        they should differ from AWS's default quotas, which the engine otherwise paces itself by."
      - Raise one where AWS raised the account's quota (Service Quotas); lower one to leave part of a quota to
        other workloads of the account.
      - The engine still halves a rate when AWS throttles it, and grows it back at most to the value given here.
      - Keys are the operations the engine calls (C(CreateThing), C(UpdateThing), C(DescribeThing),
        C(ListThings), C(ListThingPrincipals), C(ListThingsInThingGroup), C(AttachThingPrincipal),
        C(CreateCertificateFromCsr), C(UpdateCertificate), C(AttachPolicy), and so on; a wrong name is refused
        with the list of valid ones).
    type: dict
  progress_interval:
    description:
      - Seconds between two progress writes and two progress lines on the controller.
      - V(0) turns progress off.
    type: float
    default: 10
  state:
    description:
      - Only V(present).
    type: str
    default: present
    choices: [present]
extends_documentation_fragment:
  - iotfleet.provisioning.aws
  - iotfleet.provisioning.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  idempotent:
    support: full
  action_group:
    support: full
    membership:
      - iotfleet.provisioning.aws
notes:
  - "IAM permissions: C(iot:ListThings), C(iot:DescribeThing), C(iot:ListThingsInThingGroup),
    C(iot:ListThingPrincipals), C(iot:ListCertificates), C(iot:ListTargetsForPolicy), C(iot:DescribeCertificate),
    C(iot:CreateThing),
    C(iot:UpdateThing), C(iot:CreateThingGroup), C(iot:AddThingToThingGroup), C(iot:RemoveThingFromThingGroup),
    C(iot:CreateKeysAndCertificate), C(iot:CreateCertificateFromCsr), C(iot:RegisterCertificateWithoutCA),
    C(iot:AttachThingPrincipal), C(iot:AttachPolicy), C(iot:DetachPolicy), C(iot:UpdateCertificate); with
    C(billing_group) also C(iot:ListThingsInBillingGroup), C(iot:AddThingToBillingGroup),
    C(iot:RemoveThingFromBillingGroup); with rotation also
    C(iot:ListAttachedPolicies), C(iot:ListPrincipalThings), C(iot:DetachThingPrincipal),
    C(iot:DeleteCertificate); with prune
    or orphan clean-up also C(iot:DetachThingPrincipal), C(iot:ListPrincipalThings), C(iot:ListAttachedPolicies),
    C(iot:DeleteCertificate), C(iot:DeleteThing)."
  - The orphan clean-up never touches an ACTIVE certificate it cannot prove made by a V(csr) call of this
    fleet with its device's key, nor one attached to a thing, nor one created outside the window of a call of
    this fleet whose answer may have been lost; another fleet, or the
    M(iotfleet.provisioning.certificate) module, running at the same time keeps its certificates. It deletes
    only what it proves its own; for AWS-made keys a lost answer's certificate cannot be proven, so it is
    reported (C(orphaned_certificates_kept)) and left for a person.
  - The plan reads the things with C(ListThings) (pages of 250) as long as that costs no more quota time than
    one C(DescribeThing) per device (one page per 35 devices), then describes the devices not seen yet; so an
    account with many more things than the fleet is not read whole.
  - The per-API rate budgets start at AWS's default quotas (or O(api_rates)) and never rise above them.
author:
  - iotfleet.provisioning developers (@iotfleet)
"""

EXAMPLES = r"""
- name: Provision the sensors listed by manufacturing
  iotfleet.provisioning.fleet:
    devices_file: files/sensors.csv
    fleet_group: sensors
    defaults:
      thing_type: sensor
      certificate: csr
      policies: [sensor-policy]
    output_dir: /srv/pki/sensors
    report_path: /srv/pki/sensors-report.json

- name: Review what would change (use with --check --diff)
  iotfleet.provisioning.fleet:
    devices:
      - name: gw-001
        thing_groups: [gateways]
        certificate: aws_keys
      - name: gw-002
        attributes: {site: berlin}
        certificate: none
    fleet_group: gateways-fleet
    output_dir: /srv/pki/gateways
    plan_path: /tmp/gateways-plan.json
  check_mode: true
  register: gateways_plan

- name: Remove devices no longer listed, at most 5 of them
  iotfleet.provisioning.fleet:
    devices_file: fleet.yml
    fleet_group: sensors
    output_dir: /srv/pki/sensors
    prune: true
    max_prune: 5

- name: Retire the whole fleet (an empty list never prunes without prune_all; try it with --check first)
  iotfleet.provisioning.fleet:
    devices: []
    fleet_group: old-sensors
    output_dir: /srv/pki/old-sensors
    prune: true
    prune_all: true

- name: Every host of the inventory group sensors, in an account whose CreateThing quota AWS raised
  iotfleet.provisioning.fleet:
    devices: "{{ groups['sensors'] | iotfleet.provisioning.devices_from_hosts(hostvars) }}"
    fleet_group: sensors
    defaults:
      certificate: csr
      policies: [sensor-policy]
    output_dir: /srv/pki/sensors
    api_rates:
      CreateThing: 300
    progress_interval: 30
    progress_path: /var/log/fleet/sensors-progress.json
  delegate_to: localhost
  run_once: true

- name: Rotate what expires within 60 days, warn at 90, fail at 14 (a GitOps job, run daily)
  iotfleet.provisioning.fleet:
    devices_file: fleet/sensors.csv
    fleet_group: sensors
    defaults:
      certificate: csr
      policies: [sensor-policy]
    output_dir: /srv/pki/sensors
    certificate_expiry:
      warn_within_days: 90
      fail_within_days: 14
    rotation:
      expiring_within_days: 60
      # Written by the pipeline from the presence events (device -> id of its NEW certificate).
      confirmed_file: fleet/confirmed-certificates.yml
    report_path: /srv/pki/sensors-report.json

- name: Rotate two devices whose keys may have leaked, and every RSA key below 3072 bits
  iotfleet.provisioning.fleet:
    devices_file: fleet/sensors.csv
    fleet_group: sensors
    output_dir: /srv/pki/sensors
    rotation:
      devices: [sensor-0042, sensor-0043]
      requested_on: "2026-12-05"
      key_minimum:
        rsa_bits: 3072
      confirmed:
        - 6f1ad3c0e6d6d1a3b7c4b2c81d2e1c0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b
"""

RETURN = r"""
plan:
  description: What the run does (or would do in check mode).
  returned: always
  type: dict
  contains:
    counts:
      description: Devices by action (create, update, unchanged, prune, failed) and thing groups to create.
      type: dict
      sample: {create: 10, update: 2, unchanged: 488, prune: 0, failed: 0, create_thing_group: 1}
    thing_groups_to_create:
      description: Thing groups that do not exist yet.
      type: list
      elements: str
    devices:
      description: The first 50 devices that change or fail, each with C(name), C(action), C(changes)
        and, for a failure found while planning, C(error).
      type: list
      elements: dict
    devices_listed:
      description: How many devices C(devices) lists.
      type: int
    devices_not_listed:
      description: How many changing devices were left out of C(devices) (see O(plan_path) for all).
      type: int
    pending_certificate_markers:
      description: Certificate-creating calls of earlier runs left unfinished (an answer lost, a run killed)
        whose certificates this run finds again by public key or checks for orphans (see the orphan clean-up
        above).
      type: int
    key_not_on_this_controller:
      description: The devices in sync on the certificate attached to their thing whose key is not in
        O(output_dir) on this controller, as C(count) and C(devices) (the first 50 names).
      type: dict
    made_by_earlier_tasks:
      description: In check mode, the O(declared_resources) that do not exist yet and were planned as made by
        earlier tasks, as C(policies) and C(thing_types) lists (and C(billing_groups) when
        O(declared_resources.billing_groups) is given); empty outside check mode.
      type: dict
    expiry:
      description: Where each device's certificate dates came from (C(validity), devices by V(file),
        V(DescribeCertificate) or V(not read)), the 10 certificates that expire first (C(soonest), each with
        C(name), C(certificate_id), C(not_after), C(days_left), C(validity), C(key)) and how many devices
        O(certificate_expiry) warned about (C(warnings)).
      type: dict
      sample: {validity: {file: 498, not read: 2}, soonest: [], warnings: 0}
    rotation:
      description: Devices by rotation stage (C(counts) of V(issue), V(waiting), V(retire), V(promote)) and the
        first 50 with their stage (C(devices), each C(name), C(stage), C(text)).
      type: dict
summary_line:
  description: The devices by action on one line, also printed on the console by the action plugin.
  returned: always
  type: str
  sample: "sensors: 3 create, 5 update, 2 prune, 43 unchanged"
summary:
  description: What the run did. In check mode only C(duration) and the read calls are meaningful.
  returned: always
  type: dict
  contains:
    created:
      description: Devices created.
      type: int
    updated:
      description: Devices changed.
      type: int
    unchanged:
      description: Devices that already matched.
      type: int
    pruned:
      description: Devices decommissioned.
      type: int
    failed:
      description: Devices that failed.
      type: int
    orphaned_certificates_deleted:
      description: Certificates left behind by lost answers that were deleted (those this fleet could prove
        it made).
      type: int
    orphaned_certificates_kept:
      description: INACTIVE, unattached certificates within a lost answer's window that this fleet could not
        prove it made, so left alone (their ids are in the report and a warning).
      type: int
    api_calls:
      description: AWS calls by operation (retries included).
      type: dict
    api_calls_total:
      description: All AWS calls.
      type: int
    throttles:
      description: Calls answered with throttling.
      type: int
    retries:
      description: Calls retried (throttles, 5xx, dropped connections).
      type: int
    duration:
      description: Seconds the run took.
      type: float
failures:
  description: Each failed device with the step that failed and the error.
  returned: always
  type: list
  elements: dict
  sample: [{name: sensor-0042, step: "attach policy sensor-policy", error: "AttachPolicy failed with ..."}]
diff:
  description: With C(--diff), one entry per changing device (the first 50), headed by its name and action,
    with its thing type, attributes, managed groups and certificate before and after (a pruned device also
    lists the certificates it takes with it). A removed device and an added one are never shown as one
    changed into the other.
  returned: when diff mode is on
  type: list
  elements: dict
"""

from ansible_collections.iotfleet.provisioning.plugins.module_utils.aws import IoTModule, make_client
from ansible_collections.iotfleet.provisioning.plugins.module_utils.fleet import (
    failure_warning,
    plan_diff,
    plan_result,
    run_fleet,
    summary_line,
    summary_result,
    validate_fleet,
    write_report,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.fleet_progress import Progress
from ansible_collections.iotfleet.provisioning.plugins.module_utils.fleet_rate import DEFAULT_TPS, Caller, RateBudget

# The run's counts under the plan's action names.
ACTION_COUNTS = {
    "create": "created",
    "update": "updated",
    "prune": "pruned",
    "unchanged": "unchanged",
    "failed": "failed",
}


def main() -> None:
    module = IoTModule(
        argument_spec=dict(
            devices=dict(type="list", elements="dict"),
            devices_file=dict(type="path"),
            defaults=dict(type="dict", default={}),
            fleet_group=dict(type="str", required=True),
            output_dir=dict(type="path"),
            prune=dict(type="bool", default=False),
            prune_all=dict(type="bool", default=False),
            max_prune=dict(type="raw", default="10%"),
            max_failures=dict(type="int", default=0),
            replace_lost_keys=dict(type="bool", default=False),
            concurrency=dict(type="int", default=10),
            plan_path=dict(type="path"),
            report_path=dict(type="path"),
            progress_path=dict(type="path"),
            progress_interval=dict(type="float", default=10.0),
            api_rates=dict(type="dict"),
            declared_resources=dict(
                type="dict",
                options=dict(
                    policies=dict(type="list", elements="str"),
                    thing_types=dict(type="list", elements="str"),
                    billing_groups=dict(type="list", elements="str"),
                ),
            ),
            certificate_expiry=dict(
                type="dict",
                options=dict(warn_within_days=dict(type="int"), fail_within_days=dict(type="int")),
            ),
            rotation=dict(
                type="dict",
                options=dict(
                    expiring_within_days=dict(type="int"),
                    devices=dict(type="list", elements="str"),
                    requested_on=dict(type="str"),
                    key_minimum=dict(
                        type="dict", no_log=False, options=dict(rsa_bits=dict(type="int"), ec_bits=dict(type="int"))
                    ),
                    confirmed=dict(type="list", elements="str"),
                    confirmed_file=dict(type="path"),
                ),
            ),
            state=dict(type="str", default="present", choices=["present"]),
        ),
        mutually_exclusive=[["devices", "devices_file"]],
        required_one_of=[["devices", "devices_file"]],
    )

    def run() -> dict:
        spec = validate_fleet(module.params)
        p = module.params
        config = dict(p.get("aws_config") or {})
        # The engine paces and retries itself: botocore's own retries would hide throttles from the budgets.
        config["retries"] = {"mode": "standard", "total_max_attempts": 1}
        config.setdefault("max_pool_connections", spec.concurrency + 4)
        client = make_client(
            "iot",
            region=p.get("region"),
            access_key=p.get("access_key"),
            secret_key=p.get("secret_key"),
            session_token=p.get("session_token"),
            profile=p.get("profile"),
            endpoint_url=p.get("endpoint_url"),
            validate_certs=p.get("validate_certs", True),
            aws_ca_bundle=p.get("aws_ca_bundle"),
            aws_config=config,
        )
        budget = RateBudget({**DEFAULT_TPS, **spec.api_rates})
        call = Caller(client, budget, max_attempts=p.get("max_attempts") or 10)
        with Progress(spec.progress_path, spec.progress_interval, call.summary) as progress:
            plan, outcome, duration = run_fleet(call, spec, module.check_mode, progress=progress)
        result = dict(
            plan=plan_result(plan),
            failures=[],
            summary_line=summary_line(plan.counts(), module.check_mode, spec.fleet_group),
        )
        if outcome is None:
            counts = plan.counts()
            changed = bool(counts["create"] or counts["update"] or counts["prune"] or plan.groups_to_create)
            result["summary"] = {**call.summary(), "duration": round(duration, 3)}
            result["failures"] = [
                {"name": d.name, "step": "plan", "error": d.error} for d in plan.devices if d.action == "failed"
            ]
        else:
            summary = summary_result(outcome, call.summary(), duration)
            changed = bool(
                summary["created"]
                or summary["updated"]
                or summary["pruned"]
                or plan.groups_to_create
                or summary["orphaned_certificates_deleted"]
            )
            result["summary"] = summary
            result["failures"] = outcome.failures
            done = {action: summary[key] for action, key in ACTION_COUNTS.items()}
            result["summary_line"] = summary_line(
                {**done, "create_thing_group": len(plan.groups_to_create)}, False, spec.fleet_group
            )
            if outcome.orphans_kept:
                module.warn(
                    f"{len(outcome.orphans_kept)} INACTIVE certificate(s) attached to no thing were made within the "
                    "window of a certificate call of this fleet whose answer was lost, but this fleet cannot prove "
                    "it made them, so they were left alone (check them, then remove them with "
                    "iotfleet.provisioning.certificate state=absent): " + ", ".join(outcome.orphans_kept[:10])
                )
            if spec.report_path:
                write_report(spec.report_path, summary, outcome, plan)
        expiring = plan.warnings
        if expiring:
            module.warn(
                f"certificate_expiry: {len(expiring)} device(s) have a certificate expiring within "
                f"{max(v for v in (spec.expiry.warn_within_days, spec.expiry.fail_within_days) if v is not None)} "
                "days: " + "; ".join(expiring[:10]) + (f" and {len(expiring) - 10} more" if len(expiring) > 10 else "")
            )
        warning = failure_warning(result["failures"], len(spec.devices), spec.max_failures)
        if warning:
            module.warn(warning)
        result = dict(changed=changed, **result)
        if module.diff_mode:
            result["diff"] = plan_diff(plan)
        if len(result["failures"]) > spec.max_failures:
            module.fail_json(
                msg=f"{len(result['failures'])} device(s) failed, more than max_failures {spec.max_failures}: "
                + "; ".join(f"{f['name']} ({f['step']}): {f['error']}" for f in result["failures"][:5]),
                **result,
            )
        return result

    module.run(run)


if __name__ == "__main__":
    main()
