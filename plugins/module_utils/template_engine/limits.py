# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Limits and vocabulary of provisioning templates, the error they raise and the parsed template."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional, Tuple

from ansible_collections.iotfleet.provisioning.plugins.module_utils import validation
from ansible_collections.iotfleet.provisioning.plugins.module_utils.errors import ValidationError

# --- limits and vocabulary -------------------------------------------------------------------------------------

TEMPLATE_BODY_MAX = 10240  # RegisterThing / CreateProvisioningTemplate templateBody
PARAMETER_KEY_MAX = 2048  # RegisterThing parameters: key
PARAMETER_VALUE_MAX = 4096  # RegisterThing parameters: value
# The AWS limits a template shares with the modules (CSR and policy document sizes, policies per certificate, thing
# groups and attributes per thing) are validation.py's, imported from there where they are checked.

TEMPLATE_TYPES = ("FLEET_PROVISIONING", "JITP")
SECTIONS = ("Parameters", "Resources", "Mappings", "DeviceConfiguration")

THING = "AWS::IoT::Thing"
CERTIFICATE = "AWS::IoT::Certificate"
POLICY = "AWS::IoT::Policy"
RESOURCE_TYPES = (THING, CERTIFICATE, POLICY)
RESOURCE_KEYS = ("Type", "Properties", "OverrideSettings")

THING_PROPERTIES = ("ThingName", "AttributePayload", "ThingTypeName", "ThingGroups", "BillingGroup")
CERTIFICATE_SOURCES = ("CertificateSigningRequest", "CertificateId", "CertificatePem")
CERTIFICATE_PROPERTIES = (*CERTIFICATE_SOURCES, "CACertificatePem", "Status", "ThingPrincipalType")
POLICY_PROPERTIES = ("PolicyName", "PolicyDocument")

OVERRIDE_ACTIONS = ("DO_NOTHING", "REPLACE", "FAIL", "MERGE")
# OverrideSettings keys for a thing are the property names (as in every AWS JSON example); MERGE only for two.
THING_OVERRIDE_KEYS = ("AttributePayload", "ThingTypeName", "ThingGroups")
MERGEABLE = ("AttributePayload", "ThingGroups")
CERTIFICATE_OVERRIDE_KEYS = ("Status",)
# AWS does not document what happens to an existing resource when a property has no OverrideSettings entry.
# Leaving it as is never reports a change AWS would not make; differences left alone are listed under
# "ignored" in the plan so a module can show them.
DEFAULT_OVERRIDE = "DO_NOTHING"

CERTIFICATE_STATUSES = ("ACTIVE", "INACTIVE")
THING_PRINCIPAL_TYPES = ("EXCLUSIVE_THING", "NON_EXCLUSIVE_THING")

# Filled from the device certificate's subject by just-in-time provisioning (JITP developer guide page).
JITP_PARAMETERS = tuple(
    "AWS::IoT::Certificate::" + field
    for field in (
        "Country",
        "Organization",
        "OrganizationalUnit",
        "DistinguishedNameQualifier",
        "StateName",
        "CommonName",
        "SerialNumber",
        "Id",
    )
)
# The fleet provisioning example references the id of the certificate the device just obtained without declaring it.
FLEET_PROVISIONING_PARAMETERS = ("AWS::IoT::Certificate::Id",)
PSEUDO_PARAMETERS: Dict[Optional[str], Tuple[str, ...]] = {
    None: (),
    "JITP": JITP_PARAMETERS,
    "FLEET_PROVISIONING": FLEET_PROVISIONING_PARAMETERS,
}

FUNCTIONS = ("Ref", "Fn::Join", "Fn::Select", "Fn::Split", "Fn::Sub", "Fn::FindInMap")
_FUNCTION_LIST = "Ref, Fn::Join, Fn::Select, Fn::Split, Fn::Sub and Fn::FindInMap"

_NAME = re.compile(validation.RESOURCE_NAME_PATTERN)
_ATTRIBUTE_NAME = re.compile(validation.ATTRIBUTE_NAME_PATTERN)
_ATTRIBUTE_VALUE = re.compile(validation.ATTRIBUTE_VALUE_PATTERN)
_CERTIFICATE_ID = re.compile(validation.CERTIFICATE_ID_PATTERN)
_SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")

# Result kinds of expressions, checked before rendering.
STRING = "string"
LIST = "list of strings"
ANY = "value"


class TemplateError(ValidationError):
    """A template or parameter that breaks a documented rule; ``path`` points into the template."""

    def __init__(self, path: str, message: str):
        super().__init__(path or "template_body", message)
        self.path = path or "template_body"
        self.message = message


@dataclass(frozen=True)
class ProvisioningTemplate:
    """A parsed, validated template body and the provisioning type it was validated for."""

    body: Dict[str, Any]
    template_type: Optional[str] = None

    @property
    def parameters(self) -> Dict[str, Any]:
        return self.body.get("Parameters") or {}

    @property
    def resources(self) -> Dict[str, Any]:
        return self.body.get("Resources") or {}

    @property
    def mappings(self) -> Dict[str, Any]:
        return self.body.get("Mappings") or {}

    def to_json(self) -> str:
        return template_body_json(self.body)


def template_body_json(body: Mapping[str, Any]) -> str:
    """The template as sent to AWS: compact JSON, non-ASCII kept as is."""
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)
