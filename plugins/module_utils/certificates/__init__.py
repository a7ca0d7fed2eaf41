# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The certificate family: device certificates, their thing attachments and policies.

Functions, in the order a module uses them:

* ``validate_certificate(params) -> DesiredCertificate``: checks every option and
  reads the local files (CSR, PEM, the certificate and key of an earlier run)
  before any client exists; raises ``ValidationError(field, rule)``.
* ``locate_certificate(client, desired)``: finds the certificate this task is
  about without minting one: by id (given, or the SHA-256 of a PEM), by the
  certificate an earlier run wrote to ``certificate_path``, or by the public key
  among the certificates attached to ``thing``.
* ``ensure_present`` / ``ensure_absent(client, desired, check_mode)`` return an
  ``ensure.Ensured`` (``extra``: the orphaned certificates an intent record led to); in
  check mode they predict ``after`` from the same plan without calling anything that
  changes state.

A new certificate is created INACTIVE and activated last, after its files are
written and its thing and policies attached, so a failure half-way never leaves an
ACTIVE certificate behind; the private key of CreateKeysAndCertificate and the
certificate PEM are written before anything else can fail, so the next run finds
the certificate again and completes it.

Creating calls are not idempotent (each CreateKeysAndCertificate or
CreateCertificateFromCsr makes another certificate), so they are never repeated
after a lost answer (``call_once``), and an intent record beside the key (or, for a
CSR, the certificate file) is written before the call: its start time, later the id
of the certificate it made. It is removed when the task succeeds. While it exists,
the next run finds what that call made: the recorded id, or the INACTIVE
certificates created in its time window that carry the key or the CSR's public key
(proof that they are this task's); it completes one of them and deletes the other
proven ones that are attached to nothing. A certificate made by a call whose key
was lost carries nothing that proves whose it is: those in the window that are
INACTIVE and attached to nothing are reported, never deleted.

The package, by stage and module: ``validate``, ``read``, ``intent``, ``present`` and ``absent`` (the
certificate module), ``thing_principal`` and ``info`` (certificate_info). Import from the package: the names
below are its interface.
"""

from __future__ import annotations

from ansible_collections.iotfleet.provisioning.plugins.module_utils.certificates.absent import (
    ensure_absent,
    remove_certificate,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.certificates.info import (
    CertificateQuery,
    info_view,
    query_certificates,
    validate_certificate_query,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.certificates.intent import (
    CREATE_OPERATIONS,
    INTENT_CALL_SECONDS,
    INTENT_SKEW_SECONDS,
    INTENT_SUFFIX,
    IntentOutcome,
    clear_intent,
    intent_path,
    resolve_intent,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.certificates.present import (
    Plan,
    check_policies_exist,
    converge_certificate,
    create_certificate,
    effective_status,
    ensure_present,
    plan_certificate,
    predicted_new_view,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.certificates.read import (
    Location,
    RemoteCertificate,
    certificate_id_from_arn,
    certificate_view,
    choose_certificate,
    describe_certificate,
    list_certificate_policies,
    list_certificate_things,
    list_thing_certificate_arns,
    locate_certificate,
    read_certificate,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.certificates.thing_principal import (
    DesiredThingPrincipal,
    ensure_thing_principal_absent,
    ensure_thing_principal_present,
    read_thing_principal,
    resolve_principal,
    thing_principal_view,
    validate_thing_principal,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.certificates.validate import (
    ALL_STATUSES,
    EXCLUSIVE_THING,
    NON_EXCLUSIVE_THING,
    PAGE_SIZE,
    SETTABLE_STATUSES,
    SOURCE_OPTIONS,
    DesiredCertificate,
    StateConflictError,
    View,
    Warn,
    validate_certificate,
    validate_certificate_id,
    validate_policy_names,
    validate_status,
    validate_thing_name,
)

__all__ = [
    "ALL_STATUSES",
    "CREATE_OPERATIONS",
    "EXCLUSIVE_THING",
    "INTENT_CALL_SECONDS",
    "INTENT_SKEW_SECONDS",
    "INTENT_SUFFIX",
    "NON_EXCLUSIVE_THING",
    "PAGE_SIZE",
    "SETTABLE_STATUSES",
    "SOURCE_OPTIONS",
    "CertificateQuery",
    "DesiredCertificate",
    "DesiredThingPrincipal",
    "IntentOutcome",
    "Location",
    "Plan",
    "RemoteCertificate",
    "StateConflictError",
    "View",
    "Warn",
    "certificate_id_from_arn",
    "certificate_view",
    "check_policies_exist",
    "choose_certificate",
    "clear_intent",
    "converge_certificate",
    "create_certificate",
    "describe_certificate",
    "effective_status",
    "ensure_absent",
    "ensure_present",
    "ensure_thing_principal_absent",
    "ensure_thing_principal_present",
    "info_view",
    "intent_path",
    "list_certificate_policies",
    "list_certificate_things",
    "list_thing_certificate_arns",
    "locate_certificate",
    "plan_certificate",
    "predicted_new_view",
    "query_certificates",
    "read_certificate",
    "read_thing_principal",
    "remove_certificate",
    "resolve_intent",
    "resolve_principal",
    "thing_principal_view",
    "validate_certificate",
    "validate_certificate_id",
    "validate_certificate_query",
    "validate_policy_names",
    "validate_status",
    "validate_thing_name",
    "validate_thing_principal",
]
