# -*- coding: utf-8 -*-
# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reading a registered CA: DescribeCACertificate as the module shows it, and its device certificates."""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional

from ansible_collections.iotfleet.provisioning.plugins.module_utils import tagging
from ansible_collections.iotfleet.provisioning.plugins.module_utils.aws import ClientError, paginate
from ansible_collections.iotfleet.provisioning.plugins.module_utils.ca.validate import PAGE_SIZE, View
from ansible_collections.iotfleet.provisioning.plugins.module_utils.errors import is_error
from ansible_collections.iotfleet.provisioning.plugins.module_utils.policy_documents import parse_remote_document


def _iso(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def registration_config_view(config: Optional[Mapping[str, Any]]) -> Optional[Dict[str, Any]]:
    """AWS's registrationConfig in snake_case, with the template body parsed; None when there is none."""
    config = {k: v for k, v in (config or {}).items() if v not in (None, "")}
    if not config:
        return None
    view: Dict[str, Any] = {}
    if "templateName" in config:
        view["template_name"] = config["templateName"]
    if "templateBody" in config:
        view["template_body"] = parse_remote_document(config["templateBody"])
    if "roleArn" in config:
        view["role_arn"] = config["roleArn"]
    return view


def ca_view(response: Mapping[str, Any]) -> View:
    """What the module returns and diffs, from DescribeCACertificate."""
    description = response.get("certificateDescription") or {}
    return {
        "certificate_id": description.get("certificateId"),
        "arn": description.get("certificateArn"),
        "status": description.get("status"),
        "auto_registration_status": description.get("autoRegistrationStatus"),
        "registration_config": registration_config_view(response.get("registrationConfig")),
        "certificate_mode": description.get("certificateMode"),
        "creation_date": _iso(description.get("creationDate")),
    }


def read_ca_certificate(client: Any, certificate_id: str, with_tags: bool = False) -> Optional[View]:
    """The registered CA, or None. Tags are read only when asked (they need iot:ListTagsForResource)."""
    try:
        response = client.describe_ca_certificate(certificateId=certificate_id)
    except ClientError as e:
        if is_error(e, "ResourceNotFoundException"):
            return None
        raise
    view = ca_view(response)
    if with_tags:
        view["tags"] = tagging.read_tags(client, view["arn"])
    return view


def list_device_certificates(client: Any, certificate_id: str) -> List[Dict[str, Any]]:
    """The device certificates registered with this CA (every page of ListCertificatesByCA)."""
    return paginate(
        client, "list_certificates_by_ca", "certificates", caCertificateId=certificate_id, pageSize=PAGE_SIZE
    )
