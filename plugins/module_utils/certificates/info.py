# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The certificate_info module's logic: validated queries over certificates."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List, Mapping, Optional

from ansible_collections.iotfleet.provisioning.plugins.module_utils.aws import paginate
from ansible_collections.iotfleet.provisioning.plugins.module_utils.certificates.read import (
    _iso,
    certificate_id_from_arn,
    describe_certificate,
    list_thing_certificate_arns,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.certificates.validate import (
    ALL_STATUSES,
    PAGE_SIZE,
    View,
    validate_certificate_id,
    validate_thing_name,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.errors import ValidationError

# ---------------------------------------------------------------------------
# certificate_info
# ---------------------------------------------------------------------------


@dataclass
class CertificateQuery:
    certificate_id: Optional[str] = None
    thing: Optional[str] = None
    ca_certificate_id: Optional[str] = None
    status: Optional[str] = None
    include_pem: bool = False


def validate_certificate_query(params: Mapping[str, Any]) -> CertificateQuery:
    selectors = [name for name in ("certificate_id", "thing", "ca_certificate_id") if params.get(name) is not None]
    if len(selectors) > 1:
        raise ValidationError(", ".join(selectors), "are mutually exclusive: select certificates by one of them")
    query = CertificateQuery(include_pem=bool(params.get("include_pem")))
    if params.get("certificate_id") is not None:
        query.certificate_id = validate_certificate_id(params["certificate_id"])
    if params.get("ca_certificate_id") is not None:
        query.ca_certificate_id = validate_certificate_id(params["ca_certificate_id"], "ca_certificate_id")
    if params.get("thing") is not None:
        query.thing = validate_thing_name(params["thing"])
    status = params.get("status")
    if status is not None:
        if status not in ALL_STATUSES:
            raise ValidationError("status", f"must be one of {', '.join(ALL_STATUSES)}, got {status!r}")
        query.status = status
    return query


def info_view(item: Mapping[str, Any], ca_certificate_id: Optional[str] = None) -> View:
    """One certificate of certificate_info.

    List calls do not report the CA (only DescribeCertificate does), so ``ca_certificate_id`` is present when it is
    known: from a description, or from the CA the query selected by.
    """
    view = {
        "certificate_id": item.get("certificateId"),
        "certificate_arn": item.get("certificateArn"),
        "status": item.get("status"),
        "creation_date": _iso(item.get("creationDate")),
    }
    known_ca = item.get("caCertificateId") or ca_certificate_id
    if known_ca or "certificatePem" in item:
        view["ca_certificate_id"] = known_ca
    if item.get("certificateMode"):
        view["certificate_mode"] = item["certificateMode"]
    return view


def query_certificates(client: Any, query: CertificateQuery) -> List[View]:
    """The certificates the query selects (every page), snake_case, sorted by id."""
    items: List[Mapping[str, Any]]
    if query.certificate_id:
        found = describe_certificate(client, query.certificate_id)
        items = [found] if found else []
    elif query.thing:
        arns = list_thing_certificate_arns(client, query.thing) or []
        items = [d for d in (describe_certificate(client, certificate_id_from_arn(a)) for a in arns) if d]
    elif query.ca_certificate_id:
        items = paginate(
            client,
            "list_certificates_by_ca",
            "certificates",
            caCertificateId=query.ca_certificate_id,
            pageSize=PAGE_SIZE,
        )
    else:
        items = paginate(client, "list_certificates", "certificates", pageSize=PAGE_SIZE)
    if query.status:
        items = [item for item in items if item.get("status") == query.status]
    results = []
    for item in items:
        if query.include_pem and "certificatePem" not in item:
            item = describe_certificate(client, item["certificateId"]) or item
        view = info_view(item, query.ca_certificate_id)
        if query.include_pem:
            view["certificate_pem"] = item.get("certificatePem")
        results.append(view)
    return sorted(results, key=lambda v: v["certificate_id"] or "")
