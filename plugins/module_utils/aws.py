# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The AWS core every module shares.

One place knows how to build a client (credentials, region, endpoint, retries,
user agent), how to turn a failed call into a message a person can act on, and
how a module validates its input before the first call.
"""

from __future__ import annotations

import re
import traceback
from typing import Any, Callable, Iterable, Iterator, Mapping

from ansible.module_utils.basic import AnsibleModule, env_fallback, missing_required_lib

from ansible_collections.iotfleet.provisioning.plugins.module_utils.ensure import Ensured
from ansible_collections.iotfleet.provisioning.plugins.module_utils.ensure import result as ensured_result

# The errors live in errors.py (importable without boto3); import them from there.
from ansible_collections.iotfleet.provisioning.plugins.module_utils.errors import AwsCallError, ValidationError

try:
    import boto3
    import botocore
    from botocore.config import Config
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        NoCredentialsError,
        NoRegionError,
        PartialCredentialsError,
        ProfileNotFound,
    )
    from botocore.exceptions import (
        ConnectionError as BotoConnectionError,
    )

    HAS_BOTO3 = True
    BOTO3_IMPORT_ERROR = None
except ImportError:  # pragma: no cover - exercised by ansible-test's import test
    HAS_BOTO3 = False
    BOTO3_IMPORT_ERROR = traceback.format_exc()

    class ClientError(Exception):  # type: ignore[no-redef]
        """Stand-in so that except clauses stay valid without botocore."""

    class BotoCoreError(Exception):  # type: ignore[no-redef]
        """Stand-in so that except clauses stay valid without botocore."""

    class BotoConnectionError(BotoCoreError):  # type: ignore[no-redef]
        """Stand-in so that except clauses stay valid without botocore."""


COLLECTION_NAME = "iotfleet.provisioning"
COLLECTION_VERSION = "0.1.0"
DEFAULT_MAX_ATTEMPTS = 10

# AWS reports hard quotas (an 11th policy on a certificate, ...) as
# LimitExceededException, which botocore's standard and adaptive retry modes
# treat as throttling. Retrying cannot succeed, so these codes stop at once.
HARD_LIMIT_ERROR_CODES = frozenset({"LimitExceededException"})

# Answers that prove a request was refused before it ran: the only failures after which `call_once` lets
# botocore retry a call that must not run twice.
THROTTLING_ERROR_CODES = frozenset(
    {"ThrottlingException", "Throttling", "TooManyRequestsException", "RequestLimitExceeded", "RequestThrottled"}
)

MISSING_REGION_MESSAGE = (
    "No AWS region is set: give the module the 'region' option (alias 'aws_region'), "
    "set AWS_REGION or AWS_DEFAULT_REGION, or set a region in the AWS profile."
)
MISSING_CREDENTIALS_MESSAGE = (
    "No AWS credentials were found: set 'access_key' and 'secret_key' (or 'profile'), "
    "or the AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_PROFILE environment variables, "
    "or run where an instance or task role provides them."
)


def aws_common_argument_spec() -> dict[str, Any]:
    """The connection options of every module, named and aliased as in amazon.aws."""
    return dict(
        # boto3 itself reads only AWS_DEFAULT_REGION; AWS_REGION is what most tools and AWS's own runtimes set.
        region=dict(
            type="str",
            aliases=["aws_region", "ec2_region"],
            fallback=(env_fallback, ["AWS_REGION", "AWS_DEFAULT_REGION", "EC2_REGION"]),
        ),
        access_key=dict(type="str", aliases=["aws_access_key_id", "aws_access_key", "ec2_access_key"], no_log=False),
        secret_key=dict(type="str", aliases=["aws_secret_access_key", "aws_secret_key", "ec2_secret_key"], no_log=True),
        session_token=dict(
            type="str", aliases=["aws_session_token", "security_token", "aws_security_token"], no_log=True
        ),
        profile=dict(type="str", aliases=["aws_profile"]),
        endpoint_url=dict(type="str", aliases=["aws_endpoint_url", "ec2_url", "s3_url"]),
        validate_certs=dict(type="bool", default=True),
        aws_ca_bundle=dict(type="path"),
        aws_config=dict(type="dict"),
        max_attempts=dict(type="int", default=DEFAULT_MAX_ATTEMPTS),
        debug_botocore_endpoint_logs=dict(type="bool", default=False),
    )


def _stop_retrying_hard_limits(response: Any = None, operation: Any = None, **_kwargs: Any) -> None:
    """needs-retry hook: raise hard-limit errors before botocore schedules a retry.

    Registered first, so it runs before the retry handler and the adaptive rate
    limiter (which would otherwise also slow down for a non-throttle).
    """
    if not response:
        return
    parsed = response[1] if isinstance(response, tuple) and len(response) > 1 else None
    if not isinstance(parsed, dict):
        return
    code = parsed.get("Error", {}).get("Code")
    if code in HARD_LIMIT_ERROR_CODES:
        raise ClientError(parsed, operation.name if operation is not None else "AWS call")


def _stop_ambiguous_retries(
    response: Any = None, caught_exception: Any = None, operation: Any = None, **_kwargs: Any
) -> None:
    """needs-retry hook of `call_once`: end the call at once unless the failure proves the request did not run.

    Retried: throttling, and a connection that was never made (botocore's ConnectionError: refused, connect
    timeout, proxy or TLS failure). Raised at once: a lost answer (connection closed, read timeout) and 5xx errors,
    after which AWS may have carried the request out; other errors, which botocore would not retry anyway.
    """
    if caught_exception is not None:
        if isinstance(caught_exception, BotoConnectionError):
            return
        raise caught_exception
    parsed = response[1] if isinstance(response, tuple) and len(response) > 1 else None
    if not isinstance(parsed, dict):
        return
    code = parsed.get("Error", {}).get("Code")
    if code and code not in THROTTLING_ERROR_CODES:
        raise ClientError(parsed, operation.name if operation is not None else "AWS call")


def call_once(client: Any, method: str, **params: Any) -> Any:
    """``client.<method>(**params)`` for a call that must not run twice (it makes something new each time).

    botocore's retry handler would repeat it after a lost answer, and each repeat can make another resource
    (CreateKeysAndCertificate: another certificate whose private key is lost). Here it is retried only when the
    failure proves the request did not run; otherwise the error is raised for the caller to find out by reading.
    """
    meta = getattr(client, "meta", None)
    if meta is None or not hasattr(meta, "events"):
        return getattr(client, method)(**params)  # a stand-in client without botocore's retry handler
    operation = client.meta.method_to_api_mapping[method]
    event = f"needs-retry.{client.meta.service_model.service_id.hyphenize()}.{operation}"
    unique_id = f"iotfleet-call-once-{id(client)}-{operation}"
    client.meta.events.register_first(event, _stop_ambiguous_retries, unique_id=unique_id)
    try:
        return getattr(client, method)(**params)
    finally:
        client.meta.events.unregister(event, unique_id=unique_id)


def botocore_config(max_attempts: int = DEFAULT_MAX_ATTEMPTS, extra: Mapping[str, Any] | None = None) -> Config:
    """Adaptive retries (client-side rate limiting on throttles) and our user agent."""
    settings: dict[str, Any] = dict(extra or {})
    settings.setdefault("retries", {"mode": "adaptive", "total_max_attempts": max_attempts})
    settings["user_agent_extra"] = f"{COLLECTION_NAME.replace('.', '-')}/{COLLECTION_VERSION}"
    return Config(**settings)


def make_client(
    service: str,
    region: str | None = None,
    access_key: str | None = None,
    secret_key: str | None = None,
    session_token: str | None = None,
    profile: str | None = None,
    endpoint_url: str | None = None,
    validate_certs: bool = True,
    aws_ca_bundle: str | None = None,
    aws_config: Mapping[str, Any] | None = None,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
) -> Any:
    """A boto3 client; unset options fall back to boto3's own resolution."""
    session = boto3.session.Session(
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        aws_session_token=session_token,
        profile_name=profile,
        region_name=region,
    )
    verify: bool | str = aws_ca_bundle if (validate_certs and aws_ca_bundle) else validate_certs
    client = session.client(
        service,
        endpoint_url=endpoint_url,
        verify=verify,
        config=botocore_config(max_attempts, aws_config),
    )
    client.meta.events.register_first(
        f"needs-retry.{client.meta.service_model.service_id.hyphenize()}", _stop_retrying_hard_limits
    )
    if client.meta.region_name is None:
        raise NoRegionError()
    return client


def paginate(client: Any, operation: str, result_key: str, **params: Any) -> list[Any]:
    """Every item of a paged list call, following nextToken/marker to the end."""
    items: list[Any] = []
    for page in iter_pages(client, operation, **params):
        items.extend(page.get(result_key, []))
    return items


def iter_pages(client: Any, operation: str, **params: Any) -> Iterator[dict[str, Any]]:
    params = {k: v for k, v in params.items() if v is not None}
    if client.can_paginate(operation):
        yield from client.get_paginator(operation).paginate(**params)
        return
    # A few IoT list calls have no botocore paginator: follow nextToken by hand.
    call: Callable[..., dict[str, Any]] = getattr(client, operation)
    while True:
        page = call(**params)
        yield page
        token = page.get("nextToken") or page.get("nextMarker")
        if not token:
            return
        params["nextToken" if "nextToken" in page else "marker"] = token


_CAMEL_BOUNDARY = re.compile(r"((?<=[a-z0-9])[A-Z]|(?!^)[A-Z](?=[a-z]))")


def snake_case(name: str) -> str:
    return _CAMEL_BOUNDARY.sub(r"_\1", name).lower()


def snake_dict(value: Any, keep_keys_of: Iterable[str] = ("attributes", "tags")) -> Any:
    """Convert AWS camelCase keys to snake_case, leaving user-named maps (attributes, tags) alone."""
    keep = set(keep_keys_of)
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            new_key = snake_case(key)
            out[new_key] = item if new_key in keep else snake_dict(item, keep)
        return out
    if isinstance(value, list):
        return [snake_dict(item, keep) for item in value]
    return value


def drop_response_metadata(response: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in response.items() if k != "ResponseMetadata"}


class IoTModule:
    """AnsibleModule plus the AWS connection options, a client factory and AWS-aware failures."""

    def __init__(self, argument_spec: dict[str, Any], **kwargs: Any):
        spec = aws_common_argument_spec()
        spec.update(argument_spec)
        kwargs.setdefault("supports_check_mode", True)
        self.module = AnsibleModule(argument_spec=spec, **kwargs)
        self.params = self.module.params
        self.check_mode = self.module.check_mode
        if not HAS_BOTO3:
            self.module.fail_json(msg=missing_required_lib("boto3 and botocore"), exception=BOTO3_IMPORT_ERROR)
        self._clients: dict[str, Any] = {}
        self.resource_actions: set[str] = set()

    @property
    def diff_mode(self) -> bool:
        return bool(self.module._diff)

    def client(self, service: str = "iot") -> Any:
        if service not in self._clients:
            p = self.params
            try:
                self._clients[service] = make_client(
                    service,
                    region=p.get("region"),
                    access_key=p.get("access_key"),
                    secret_key=p.get("secret_key"),
                    session_token=p.get("session_token"),
                    profile=p.get("profile"),
                    endpoint_url=p.get("endpoint_url"),
                    validate_certs=p.get("validate_certs", True),
                    aws_ca_bundle=p.get("aws_ca_bundle"),
                    aws_config=p.get("aws_config"),
                    max_attempts=p.get("max_attempts") or DEFAULT_MAX_ATTEMPTS,
                )
            except NoRegionError:
                self.module.fail_json(msg=MISSING_REGION_MESSAGE)
            except ProfileNotFound as e:
                self.module.fail_json(msg=f"profile: {e}. Set 'profile' to a profile in your AWS config.")
            if p.get("debug_botocore_endpoint_logs"):
                self._clients[service].meta.events.register("before-call.*.*", self._record_action)
        return self._clients[service]

    def _record_action(self, model: Any = None, **_kwargs: Any) -> None:
        if model is not None:
            self.resource_actions.add(f"{model.service_model.signing_name}:{model.name}")

    def warn(self, message: str) -> None:
        self.module.warn(message)

    def exit_json(self, **result: Any) -> None:
        self.module.exit_json(**result)

    def fail_json(self, msg: str, **kwargs: Any) -> None:
        self.module.fail_json(msg=msg, **kwargs)

    def result(self, ensured: Ensured, view: Callable[[Any], Any] | None = None, **fields: Any) -> dict[str, Any]:
        """The module's result from an ensure_* outcome: changed, its extras, ``fields``, the diff when asked."""
        return ensured_result(ensured, self.diff_mode, view, **fields)

    def ensure(
        self,
        desired: Any,
        present: Callable[[Any, Any, bool], Ensured],
        absent: Callable[[Any, Any, bool], Ensured],
        view: Callable[[Any], Any] | None = None,
        returned: str | None = None,
    ) -> dict[str, Any]:
        """The whole run of a module with one resource: ``absent`` when ``desired.state`` is absent, else ``present``
        (any other state, such as a thing type's deprecated, is the present function's), with the IoT client and
        check mode; the result carries the diff of ``view`` and the resource (``after``, {} once gone) as
        ``returned``."""
        ensure = absent if desired.state == "absent" else present
        done = ensure(self.client("iot"), desired, self.check_mode)
        fields = {returned: done.after or {}} if returned else {}
        return self.result(done, view, **fields)

    def run(self, action: Callable[[], dict[str, Any]]) -> None:
        """Run the module's work and exit, turning every expected failure into a clear message."""
        try:
            result = action()
        except ValidationError as e:
            self.module.fail_json(msg=str(e))
        except AwsCallError as e:
            self.module.fail_json(
                msg=str(e), error={"code": e.code, "message": e.message}, request_id=e.request_id, operation=e.operation
            )
        except ClientError as e:
            err = AwsCallError.from_client_error(e)
            self.module.fail_json(
                msg=str(err),
                error={"code": err.code, "message": err.message},
                request_id=err.request_id,
                operation=err.operation,
                exception=traceback.format_exc(),
            )
        except NoRegionError:
            self.module.fail_json(msg=MISSING_REGION_MESSAGE)
        except (NoCredentialsError, PartialCredentialsError) as e:
            self.module.fail_json(msg=f"{MISSING_CREDENTIALS_MESSAGE} ({e})")
        except BotoCoreError as e:
            self.module.fail_json(
                msg=f"AWS call failed before a response arrived: {e}. "
                "Check endpoint_url, network access and TLS settings (validate_certs, aws_ca_bundle).",
                exception=traceback.format_exc(),
            )
        else:
            if self.params.get("debug_botocore_endpoint_logs"):
                result["resource_actions"] = sorted(self.resource_actions)
            self.module.exit_json(**result)


__all__ = [
    "IoTModule",
    "aws_common_argument_spec",
    "botocore",
    "call_once",
    "iter_pages",
    "make_client",
    "paginate",
    "snake_dict",
]
