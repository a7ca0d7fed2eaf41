#!/usr/bin/python
# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: fleet_indexing
short_description: Manage the AWS IoT fleet indexing configuration of an account and region
version_added: 0.1.0
description:
  - Sets what AWS IoT fleet indexing indexes (UpdateIndexingConfiguration), so that fleet indexing queries,
    dynamic thing groups (M(iotfleet.provisioning.dynamic_thing_group)) and the query filter of the
    C(iotfleet.provisioning.things) inventory plugin can be enabled declaratively.
  - There is one configuration per account and region. Only what is given is managed; an option left unset keeps
    its current value (AWS replaces the whole thing indexing structure, so the module sends the current values of
    the options left unset).
  - A second run with the same options reports no change and makes no mutating call.
options:
  thing_indexing:
    description:
      - What the C(AWS_Things) index holds. V(registry) indexes registry data (names, types, attributes, groups),
        V(registry_and_shadow) also the classic shadow, V(off) removes the index.
      - V(off) also turns off O(thing_connectivity), O(device_defender) and O(named_shadows) unless they are set.
      - Quote V(off) in YAML (C("off")); unquoted, YAML reads it as the boolean false.
    type: str
    choices: ["off", registry, registry_and_shadow]
  thing_connectivity:
    description:
      - Index connectivity status (thing connectivity indexing mode C(STATUS)). Needs thing indexing on.
    type: bool
  device_defender:
    description:
      - Index Device Defender violations (C(VIOLATIONS)). Needs thing indexing on.
    type: bool
  named_shadows:
    description:
      - Named shadows to index (at most 10, AWS's default quota); an empty list turns named shadow indexing off.
      - Named shadows are shadow data, so they need O(thing_indexing=registry_and_shadow).
    type: list
    elements: str
  custom_fields:
    description:
      - Custom fields for aggregation queries, each a dict with C(name) and C(type) (V(String), V(Number) or
        V(Boolean)). The list replaces the current one; an empty list removes them all.
    type: list
    elements: dict
  thing_group_indexing:
    description:
      - Index thing groups (the C(AWS_ThingGroups) index).
    type: bool
extends_documentation_fragment:
  - iotfleet.provisioning.aws
  - iotfleet.provisioning.attributes
attributes:
  check_mode:
    support: full
    details: Check mode reads the configuration and returns the predicted one.
  diff_mode:
    support: full
    details: The diff shows the managed settings before and after.
  idempotent:
    support: full
  action_group:
    support: full
    membership: [iotfleet.provisioning.aws]
notes:
  - "IAM permissions: C(iot:GetIndexingConfiguration), C(iot:UpdateIndexingConfiguration)."
  - Turning thing indexing on makes AWS build the index; queries may answer C(IndexNotReadyException) until the
    index is built.
  - Fleet indexing is billed by AWS per indexed update and per query.
seealso:
  - module: iotfleet.provisioning.dynamic_thing_group
author:
  - iotfleet.provisioning developers (@iotfleet)
"""

EXAMPLES = r"""
- name: Index the registry, with connectivity status
  iotfleet.provisioning.fleet_indexing:
    thing_indexing: registry
    thing_connectivity: true

- name: Index the registry and two named shadows
  iotfleet.provisioning.fleet_indexing:
    thing_indexing: registry_and_shadow
    named_shadows: [config, firmware]

- name: Turn thing indexing off (delete dynamic thing groups first)
  iotfleet.provisioning.fleet_indexing:
    thing_indexing: "off"
"""

RETURN = r"""
fleet_indexing:
  description: The configuration after the task (as predicted in check mode).
  returned: always
  type: dict
  contains:
    thing_indexing:
      description: V(off), V(registry) or V(registry_and_shadow).
      type: str
      sample: registry
    thing_connectivity:
      description: Whether connectivity status is indexed.
      type: bool
      sample: true
    device_defender:
      description: Whether Device Defender violations are indexed.
      type: bool
      sample: false
    named_shadows:
      description: The named shadows indexed (sorted).
      type: list
      elements: str
      sample: [config, firmware]
    custom_fields:
      description: The custom fields (sorted by name).
      type: list
      elements: dict
      sample: [{"name": "attributes.version", "type": "Number"}]
    thing_group_indexing:
      description: Whether thing groups are indexed.
      type: bool
      sample: false
diff:
  description: The managed settings before and after, with C(--diff).
  returned: when diff mode is on
  type: dict
"""

from ansible_collections.iotfleet.provisioning.plugins.module_utils.aws import IoTModule
from ansible_collections.iotfleet.provisioning.plugins.module_utils.indexing import (
    ensure_fleet_indexing,
    validate_fleet_indexing,
)


def main() -> None:
    module = IoTModule(
        argument_spec=dict(
            thing_indexing=dict(type="str", choices=["off", "registry", "registry_and_shadow"]),
            thing_connectivity=dict(type="bool"),
            device_defender=dict(type="bool"),
            named_shadows=dict(type="list", elements="str"),
            custom_fields=dict(type="list", elements="dict"),
            thing_group_indexing=dict(type="bool"),
        ),
    )

    def run() -> dict:
        desired = validate_fleet_indexing(module.params)
        done = ensure_fleet_indexing(module.client("iot"), desired, module.check_mode)
        return module.result(done, fleet_indexing=done.after)

    module.run(run)


if __name__ == "__main__":
    main()
