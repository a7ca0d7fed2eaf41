# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The collection's errors, importable without the AWS core.

``ValidationError`` is what every rule of the input raises before the first call; the local-only crypto
modules (csr, local_ca, device_certificate) need it and nothing else, so it lives here rather than in
``aws.py`` (which imports boto3 and builds clients). ``AwsCallError``, ``ERROR_HINTS``, ``error_code`` and
``is_error`` turn a failed AWS call into a code and a sentence a person can act on; ``aws.py`` re-exports
them, so ``from ...aws import ValidationError`` keeps working.

botocore is not imported here: a ``ClientError`` can only exist once botocore is loaded, so ``error_code``
looks the class up in ``sys.modules`` when it needs it.
"""

from __future__ import annotations

import sys
from typing import Optional

# A sentence per error code saying what the user can do about it.
ERROR_HINTS: dict[str, str] = {
    "UnauthorizedException": "The credentials lack permission for this call: grant the iot action named above.",
    "AccessDeniedException": "The credentials lack permission for this call: grant the action named above.",
    "ThrottlingException": (
        "AWS kept throttling after all retries: lower the concurrency, raise max_attempts, or ask for a quota increase."
    ),
    "LimitExceededException": (
        "An AWS hard limit was reached; retrying will not help: remove something first or ask AWS for a higher limit."
    ),
    "ResourceNotFoundException": (
        "The resource does not exist in this account and region: check the name, region and endpoint."
    ),
    "ResourceAlreadyExistsException": "A resource with this name already exists with a different configuration.",
    "VersionConflictException": "The resource changed while this task ran: run the task again.",
    "ConflictingResourceUpdateException": "Another update to this resource is in progress: run the task again.",
    "DeleteConflictException": (
        "The resource is still referenced (attached things, policies or principals): detach them first or use force."
    ),
    "CertificateStateException": (
        "The certificate is in a state that does not allow this: deactivate it first (status INACTIVE)."
    ),
    "MalformedPolicyException": "AWS rejected the policy document: check its JSON and the IoT policy grammar.",
    "InvalidRequestException": "AWS rejected the request parameters: check the values named in the message.",
    "ServiceUnavailableException": "AWS IoT is temporarily unavailable: run the task again later.",
    "InternalFailureException": "AWS IoT failed internally: run the task again later.",
    "InvalidClientTokenId": "The access key is not valid for this account or endpoint.",
    "UnrecognizedClientException": "The access key is not valid for this account or endpoint.",
    "ExpiredTokenException": "The session token has expired: refresh the credentials.",
}


class ValidationError(ValueError):
    """Input that fails a documented rule; raised before any AWS call."""

    def __init__(self, field: str, rule: str):
        super().__init__(f"{field}: {rule}")
        self.field = field
        self.rule = rule


class AwsCallError(Exception):
    """A failed AWS call, carrying everything the user needs to act on it."""

    def __init__(self, operation: str, code: str, message: str, request_id: str | None = None, hint: str = ""):
        self.operation = operation
        self.code = code
        self.message = message
        self.request_id = request_id
        self.hint = hint or ERROR_HINTS.get(code, "")
        text = f"{operation} failed with {code}: {message}"
        if request_id:
            text += f" (request id {request_id})"
        if self.hint:
            text += f". {self.hint}"
        super().__init__(text)

    @classmethod
    def from_client_error(cls, error: BaseException, operation: str | None = None) -> AwsCallError:
        response = getattr(error, "response", {}) or {}
        err = response.get("Error", {})
        meta = response.get("ResponseMetadata", {})
        return cls(
            operation=operation or getattr(error, "operation_name", None) or "AWS call",
            code=err.get("Code", "Unknown"),
            message=err.get("Message", str(error)),
            request_id=meta.get("RequestId"),
        )


def _client_error_class() -> Optional[type]:
    # Without botocore loaded no ClientError can have been raised; with it, the real class.
    exceptions = sys.modules.get("botocore.exceptions")
    return getattr(exceptions, "ClientError", None) if exceptions is not None else None


def is_client_error(error: BaseException) -> bool:
    """True for botocore's ClientError (and aws.py's stand-in subclasses of it)."""
    client_error = _client_error_class()
    return client_error is not None and isinstance(error, client_error)


def error_code(error: BaseException) -> str | None:
    """The AWS error code of a ClientError or AwsCallError, or None for anything else."""
    if isinstance(error, AwsCallError):
        return error.code
    if is_client_error(error):
        return getattr(error, "response", {}).get("Error", {}).get("Code")
    return None


def is_error(error: BaseException, *codes: str) -> bool:
    return error_code(error) in codes


def error_message(error: BaseException) -> str:
    """The message AWS gave with the error, or the error's own text."""
    return str((getattr(error, "response", None) or {}).get("Error", {}).get("Message", error))


__all__ = [
    "ERROR_HINTS",
    "AwsCallError",
    "ValidationError",
    "error_code",
    "error_message",
    "is_client_error",
    "is_error",
]
