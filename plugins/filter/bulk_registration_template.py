# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The bulk_registration_template filter: the bulk role's provisioning template (documented in the .yml beside)."""

from __future__ import annotations

from collections.abc import Iterable

from ansible.errors import AnsibleFilterError

ATTRIBUTE_PREFIX = "Attribute_"
CSR_PARAMETER = "CSR"
# The device keys of the template: a new value replaces the thing's own on a device registered again.
OVERRIDES = {"AttributePayload": "REPLACE", "ThingGroups": "REPLACE", "ThingTypeName": "REPLACE"}


def bulk_registration_template(parameter_names: Iterable[str], policy_name: str, thing_type: str = "") -> dict:
    """The template that takes ``parameter_names`` (ThingName, Attribute_NAME..., ThingGroups) and a CSR."""
    if isinstance(parameter_names, (str, bytes)) or not isinstance(parameter_names, Iterable):
        raise AnsibleFilterError(
            f"bulk_registration_template: the input must be a list of parameter names, got {parameter_names!r}"
        )
    names = [*list(parameter_names), CSR_PARAMETER]
    if "ThingName" not in names:
        raise AnsibleFilterError("bulk_registration_template: the parameters must include ThingName")
    if not policy_name:
        raise AnsibleFilterError("bulk_registration_template: a policy name is required")
    thing: dict = {"ThingName": {"Ref": "ThingName"}}
    attributes = {name[len(ATTRIBUTE_PREFIX) :]: {"Ref": name} for name in names if name.startswith(ATTRIBUTE_PREFIX)}
    if attributes:
        thing["AttributePayload"] = attributes
    if "ThingGroups" in names:
        # One comma-separated parameter: a registration task's parameters are strings.
        thing["ThingGroups"] = {"Fn::Split": [",", {"Ref": "ThingGroups"}]}
    if thing_type:
        thing["ThingTypeName"] = thing_type
    return {
        "Parameters": {name: {"Type": "String"} for name in names},
        "Resources": {
            "thing": {"Type": "AWS::IoT::Thing", "Properties": thing, "OverrideSettings": dict(OVERRIDES)},
            "certificate": {
                "Type": "AWS::IoT::Certificate",
                "Properties": {"CertificateSigningRequest": {"Ref": CSR_PARAMETER}, "Status": "ACTIVE"},
            },
            "policy": {"Type": "AWS::IoT::Policy", "Properties": {"PolicyName": policy_name}},
        },
    }


class FilterModule:
    def filters(self):
        return {"bulk_registration_template": bulk_registration_template}
