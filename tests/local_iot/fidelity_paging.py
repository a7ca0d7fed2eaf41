"""Paging of list calls the way AWS pages them.

moto returns most IoT lists whole, ignoring ``maxResults``/``nextToken`` (``pageSize``/``marker``), so a client
that forgets to page passes here and loses items on AWS. For the list calls below this module takes moto's
full list and answers one page of it: at most ``maxResults``/``pageSize`` items (the server's default page
size when the client sends none), plus ``nextToken``/``nextMarker`` while items remain. The parameter names
come from botocore's paginator model, the limits (1..250) are checked by fidelity_validation. Tokens are
opaque base64; one that was not issued here is refused with InvalidRequestException, as AWS does.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
from typing import Any, Callable

import botocore.session
from botocore import xform_name
from fidelity_core import OPTIONS, InvalidRequestException, PatchShapeError, _wrap, response_body
from moto.core.responses import ActionResult
from moto.iot.responses import IoTResponse

# The registry and security list calls this collection uses (AWS pages every one of them).
PAGED_OPERATIONS = (
    "ListThings",
    "ListThingTypes",
    "ListThingGroups",
    "ListThingGroupsForThing",
    "ListThingsInThingGroup",
    "ListThingPrincipals",
    "ListThingPrincipalsV2",
    "ListPrincipalThings",
    "ListPrincipalThingsV2",
    "ListCertificates",
    "ListCertificatesByCA",
    "ListPolicies",
    "ListAttachedPolicies",
    "ListPrincipalPolicies",
    "ListPolicyPrincipals",
    "ListTargetsForPolicy",
)

# Fields that identify an item of a listed page, so a token can resume after it even if items before it went.
_IDENTITY_KEYS = ("thingArn", "thingName", "principal", "groupArn", "policyArn", "certificateId", "thingTypeArn")

# moto pages ListThings and ListThingTypes itself; asking it for this many gives us the whole list.
_WHOLE_LIST = str(10**9)


@functools.lru_cache(maxsize=1)
def paginator_config() -> dict[str, Any]:
    loader = botocore.session.get_session().get_component("data_loader")
    return loader.load_service_model("iot", "paginators-1")["pagination"]


def _identity(item: Any) -> str:
    if isinstance(item, dict):
        for key in _IDENTITY_KEYS:
            if key in item:
                return str(item[key])
        return json.dumps(item, sort_keys=True, default=str)
    return str(item)


def encode_token(offset: int, last: str) -> str:
    return base64.b64encode(json.dumps({"o": offset, "k": last}).encode()).decode()


def decode_token(token: str) -> tuple[int, str]:
    try:
        data = json.loads(base64.b64decode(token.encode(), validate=True))
        return int(data["o"]), str(data["k"])
    except (binascii.Error, ValueError, KeyError, TypeError) as error:
        raise InvalidRequestException(f"The pagination token {token!r} is not valid") from error


def page(items: list[Any], limit: int, token: str | None) -> tuple[list[Any], str | None]:
    """One page of ``items`` from ``token`` on, and the token for the next page (None on the last page)."""
    start = 0
    if token:
        offset, last = decode_token(token)
        keys = [_identity(item) for item in items]
        start = keys.index(last) + 1 if last in keys else min(offset, len(items))
    chunk = items[start : start + limit]
    end = start + len(chunk)
    next_token = encode_token(end, _identity(chunk[-1])) if chunk and end < len(items) else None
    return chunk, next_token


def _install_one(operation: str, config: dict[str, Any]) -> None:
    method = xform_name(operation)
    if not hasattr(IoTResponse, method):
        raise PatchShapeError(f"paging of {operation}", f"moto's IoTResponse has no {method}()")
    limit_key, input_token = config["limit_key"], config["input_token"]
    output_token, result_key = config["output_token"], config["result_key"]

    # AWS: list calls answer one page (at most maxResults/pageSize items) and a token for the next.
    @_wrap(IoTResponse, method)
    def paged(original: Callable[..., Any], self: IoTResponse) -> Any:
        raw_limit = self._get_param(limit_key)
        limit = int(raw_limit) if raw_limit not in (None, "") else OPTIONS.default_page_size
        token = self._get_param(input_token)
        if token:
            decode_token(token)  # refuse a foreign token before moto sees it
        self.querystring.pop(input_token, None)
        self.querystring[limit_key] = [_WHOLE_LIST]
        result = original(self)
        # Never answer a list without its paging: a client would stop early and miss items.
        body = response_body(result, f"paging of {operation}", result_key)
        if not isinstance(body[result_key], list):
            raise PatchShapeError(f"paging of {operation}", f"'{result_key}' is {type(body[result_key]).__name__}")
        items, next_token = page(body[result_key], limit, token)
        body = {**body, result_key: items}
        body.pop(output_token, None)
        if next_token is not None:
            body[output_token] = next_token
        # A plain ActionResult: moto >= 5.2.6 pages a PaginatedResult again when serialising it, which would
        # drop our token (its page of our page is the whole page).
        return ActionResult(body)


def install() -> None:
    config = paginator_config()
    for operation in PAGED_OPERATIONS:
        if operation in config:
            _install_one(operation, config[operation])
