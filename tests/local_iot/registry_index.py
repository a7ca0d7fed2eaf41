"""Fleet indexing, SearchIndex, dynamic thing groups and billing groups, served by the local AWS IoT endpoint.

moto's versions of these accept what AWS refuses or answer what AWS does not: UpdateIndexingConfiguration took
any combination, SearchIndex searched with indexing off, understood a loose query language (substrings, regular
expressions built from user text) and never paged, dynamic thing groups did not exist, DescribeBillingGroup had
no ``version`` and a thing could sit in two billing groups. This module replaces or wraps them:

* GetIndexingConfiguration / UpdateIndexingConfiguration, with the combinations AWS documents
  (``thingConnectivityIndexingMode`` and ``deviceDefenderIndexingMode`` need thing indexing on).
* SearchIndex over ``AWS_Things``: the documented query syntax subset below, pages of at most 100 (the model's
  documented maximum); everything else is refused with InvalidQueryException naming what is not supported.
* CreateDynamicThingGroup / UpdateDynamicThingGroup / DeleteDynamicThingGroup; membership is the query's answer,
  refreshed whenever membership is read (ListThingsInThingGroup, ListThingGroupsForThing, ...); static-group
  calls refuse a dynamic group (add/remove a thing, a parent, a policy, DeleteThingGroup).
* Billing groups: ``version`` in DescribeBillingGroup, a thing in one billing group at a time, DeleteBillingGroup
  of a missing group succeeds and releases the members, paged ListBillingGroups / ListThingsInBillingGroup.
* ``POST /_local/registry/seed``: many things in one request, for tests that need thousands of them quickly.

Query syntax served (developer guide "Query syntax"): ``field:value`` terms on ``thingName``, ``thingId``,
``thingTypeName``, ``thingGroupNames`` (static groups the thing is directly in) and ``attributes.NAME``; a term
without a field matches any of them; a trailing ``*`` is a prefix search and ``field:*`` means the field is set;
``"quoted"`` values; ``AND``, ``OR``, ``NOT``, a leading ``-``, implicit AND between terms, parentheses and
field grouping (``thingName:(a OR b)``); case-insensitive values; at most 12 terms. Refused as AWS refuses them:
the special characters `` ` @ # % \\ / ' ; , `` and fuzzy/boost operators. Refused as not emulated (AWS serves
them): range and comparison searches, ``?`` and inner or leading wildcards, shadow, connectivity and Device
Defender fields, the ``AWS_ThingGroups`` index. Nothing here imports from the collection's ``plugins/``.
"""

from __future__ import annotations

import json
import re
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Union

import fidelity_paging
import tagging_api
from fidelity_core import (
    OPTIONS,
    STATE_LOCK,
    InvalidRequestException,
    LimitExceededException,
    ResourceAlreadyExistsException,
    ResourceNotFoundException,
    VersionConflictException,
    _wrap,
    local_state,
    response_body,
)
from moto.core import DEFAULT_ACCOUNT_ID
from moto.core.responses import ActionResult, EmptyResult
from moto.iot import exceptions as iot_exceptions
from moto.iot.models import FakeThing, IoTBackend, iot_backends
from moto.iot.responses import IoTResponse

THING_INDEX = "AWS_Things"
GROUP_INDEX = "AWS_ThingGroups"
QUERY_VERSION = "2017-09-30"  # the only one AWS supports (API ref CreateDynamicThingGroup)
SEARCH_MAX_RESULTS = 100  # model: SearchIndex maxResults "cannot exceed 100"
MAX_QUERY_TERMS = 12  # developer guide, query syntax notes
MAX_DYNAMIC_GROUPS = 100  # AWS IoT Device Management quotas: dynamic thing groups per account
THING_FIELDS = ("thingName", "thingId", "thingTypeName", "thingGroupNames")
NOT_EMULATED_FIELDS = ("shadow", "connectivity", "deviceDefender", "registry")

_INSTALLED = False
_THING_NAME_RE = re.compile(r"^[a-zA-Z0-9:_-]{1,128}$")


class InvalidQueryException(iot_exceptions.IoTClientError):
    """A query AWS cannot run, or one this endpoint does not emulate (HTTP 400 in the model)."""

    def __init__(self, msg: str) -> None:
        self.code = 400
        super().__init__("InvalidQueryException", msg)


# --------------------------------------------------------------------------- state


def _state(backend: IoTBackend) -> dict[str, Any]:
    state = local_state(backend)
    if "indexing" not in state:
        state["indexing"] = {
            "thing": {
                "thingIndexingMode": "OFF",
                "thingConnectivityIndexingMode": "OFF",
                "deviceDefenderIndexingMode": "OFF",
                "namedShadowIndexingMode": "OFF",
            },
            "group": {"thingGroupIndexingMode": "OFF"},
        }
        state["dynamic_groups"] = OrderedDict()  # name -> {"queryString", "indexName", "queryVersion", "query"}
    return state


def thing_indexing_on(backend: IoTBackend) -> bool:
    return _state(backend)["indexing"]["thing"]["thingIndexingMode"] != "OFF"


def dynamic_groups(backend: IoTBackend) -> OrderedDict[str, dict[str, Any]]:
    return _state(backend)["dynamic_groups"]


# --------------------------------------------------------------------------- query language


@dataclass(frozen=True)
class Term:
    field: str | None  # None: any registry field
    value: str  # lower case; "" with prefix=True means "the field is set"
    prefix: bool


@dataclass(frozen=True)
class Not:
    operand: Query


@dataclass(frozen=True)
class BoolOp:
    op: str  # AND or OR
    operands: tuple[Query, ...]


Query = Union[Term, Not, BoolOp]

_AWS_REFUSED_CHARACTERS = set("`@#%\\/';,")
_TOKEN_RE = re.compile(r'\s*(?:(\()|(\))|("(?:[^"]*)")|([^\s()"]+(?:"[^"]*")?))')


def _tokens(text: str) -> list[str]:
    tokens: list[str] = []
    position = 0
    while position < len(text):
        match = _TOKEN_RE.match(text, position)
        if match is None or match.end() == position:
            if text[position:].strip():
                raise InvalidQueryException(f"Syntax error in query near {text[position : position + 20]!r}")
            break
        token = next(group for group in match.groups() if group is not None)
        tokens.append(token)
        position = match.end()
    return tokens


def _check_field(field: str) -> str:
    if field in THING_FIELDS or (field.startswith("attributes.") and len(field) > len("attributes.")):
        return field
    root = field.split(".", 1)[0]
    if root in NOT_EMULATED_FIELDS:
        raise InvalidQueryException(f"the local endpoint does not emulate queries on {field!r} (registry fields only)")
    raise InvalidQueryException(
        f"field {field!r} is not a field of {THING_INDEX} this endpoint knows "
        f"({', '.join(THING_FIELDS)}, attributes.NAME); field names are case sensitive"
    )


def _term(field: str | None, raw: str) -> Term:
    if raw.startswith('"') and raw.endswith('"') and len(raw) >= 2:
        return Term(field, raw[1:-1].lower(), False)
    bad = sorted(set(raw) & _AWS_REFUSED_CHARACTERS)
    if bad:
        raise InvalidQueryException(f"Special characters {' '.join(bad)} are not supported in queries: {raw!r}")
    if any(c in raw for c in "~^"):
        raise InvalidQueryException(f"Fuzzy, proximity and boosting searches are not supported: {raw!r}")
    if any(c in raw for c in "[]{}<>") or raw.startswith(("=", ">", "<")):
        raise InvalidQueryException(f"the local endpoint does not emulate range searches: {raw!r}")
    if raw == "*":
        return Term(field, "", True)
    if "?" in raw or "*" in raw[:-1]:
        raise InvalidQueryException(
            f"the local endpoint emulates only trailing '*' (prefix) wildcards and '*' alone, not {raw!r}"
        )
    if raw.endswith("*"):
        return Term(field, raw[:-1].lower(), True)
    return Term(field, raw.lower(), False)


class _Parser:
    """Recursive descent: or_expr := and_expr (OR and_expr)*; and_expr := unary ((AND)? unary)*."""

    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.position = 0
        self.terms = 0

    def peek(self) -> str | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def take(self) -> str:
        token = self.tokens[self.position]
        self.position += 1
        return token

    def parse(self) -> Query:
        if not self.tokens:
            raise InvalidQueryException("The query string is empty")
        query = self.or_expr(None)
        if self.peek() is not None:
            raise InvalidQueryException(f"Syntax error in query: unexpected {self.peek()!r}")
        if self.terms > MAX_QUERY_TERMS:
            raise InvalidQueryException(f"A query has at most {MAX_QUERY_TERMS} terms, this one has {self.terms}")
        return query

    def or_expr(self, field: str | None) -> Query:
        operands = [self.and_expr(field)]
        while self.peek() == "OR":
            self.take()
            operands.append(self.and_expr(field))
        return operands[0] if len(operands) == 1 else BoolOp("OR", tuple(operands))

    def and_expr(self, field: str | None) -> Query:
        operands = [self.unary(field)]
        while self.peek() not in (None, ")", "OR"):
            if self.peek() == "AND":
                self.take()
            operands.append(self.unary(field))
        return operands[0] if len(operands) == 1 else BoolOp("AND", tuple(operands))

    def unary(self, field: str | None) -> Query:
        token = self.peek()
        if token is None or token in (")", "AND", "OR"):
            raise InvalidQueryException(f"Syntax error in query: expected a term, got {token!r}")
        if token == "NOT":
            self.take()
            return Not(self.unary(field))
        if token.startswith("-") and len(token) > 1:
            self.tokens[self.position] = token[1:]
            return Not(self.unary(field))
        if token == "-":
            self.take()
            return Not(self.unary(field))
        return self.primary(field)

    def group(self, field: str | None) -> Query:
        self.take()  # "("
        inner = self.or_expr(field)
        if self.peek() != ")":
            raise InvalidQueryException("Syntax error in query: missing ')'")
        self.take()
        return inner

    def primary(self, field: str | None) -> Query:
        if self.peek() == "(":
            return self.group(field)
        token = self.take()
        name, sep, rest = token.partition(":")
        if sep and not token.startswith('"'):
            if field is not None:
                raise InvalidQueryException(f"Syntax error in query: a field inside field grouping: {token!r}")
            name = _check_field(name)
            if rest == "":
                if self.peek() != "(":
                    raise InvalidQueryException(f"Syntax error in query: {token!r} has no value")
                return self.group(name)
            self.terms += 1
            return _term(name, rest)
        self.terms += 1
        return _term(field, token)


def parse_query(text: Any) -> Query:
    if not isinstance(text, str) or not text.strip():
        raise InvalidQueryException("The query string is empty")
    return _Parser(text).parse()


def _thing_values(backend: IoTBackend, thing: Any, field: str | None) -> list[str]:
    if field == "thingName":
        return [thing.thing_name]
    if field == "thingId":
        return [thing.thing_id]
    if field == "thingTypeName":
        return [thing.thing_type.thing_type_name] if thing.thing_type else []
    if field == "thingGroupNames":
        return static_group_names(backend, thing)
    if field is not None:  # attributes.NAME
        value = (thing.attributes or {}).get(field[len("attributes.") :])
        return [value] if value else []
    values: list[str] = []
    for name in THING_FIELDS:
        values += _thing_values(backend, thing, name)
    return values + [v for v in (thing.attributes or {}).values() if v]


def matches(backend: IoTBackend, thing: Any, query: Query) -> bool:
    if isinstance(query, Not):
        return not matches(backend, thing, query.operand)
    if isinstance(query, BoolOp):
        results = (matches(backend, thing, operand) for operand in query.operands)
        return all(results) if query.op == "AND" else any(results)
    values = [v.lower() for v in _thing_values(backend, thing, query.field)]
    if query.prefix:
        return any(v.startswith(query.value) for v in values)
    return query.value in values


def static_group_names(backend: IoTBackend, thing: Any) -> list[str]:
    dynamic = dynamic_groups(backend)
    return [
        g.thing_group_name
        for g in backend.thing_groups.values()
        if g.thing_group_name not in dynamic and thing.arn in g.things
    ]


# --------------------------------------------------------------------------- indexing configuration


_THING_MODES = {
    "thingIndexingMode": ("OFF", "REGISTRY", "REGISTRY_AND_SHADOW"),
    "thingConnectivityIndexingMode": ("OFF", "STATUS"),
    "deviceDefenderIndexingMode": ("OFF", "VIOLATIONS"),
    "namedShadowIndexingMode": ("OFF", "ON"),
}


def _thing_configuration(backend: IoTBackend, given: dict[str, Any]) -> dict[str, Any]:
    mode = given.get("thingIndexingMode")
    config: dict[str, Any] = {key: given.get(key) or "OFF" for key in _THING_MODES}
    # Model: "To enable thing connectivity indexing, thingIndexMode must not be set to OFF" (and Device Defender).
    if mode == "OFF":
        for key in ("thingConnectivityIndexingMode", "deviceDefenderIndexingMode", "namedShadowIndexingMode"):
            if config[key] != "OFF":
                raise InvalidRequestException(f"{key} {config[key]} needs thingIndexingMode other than OFF")
        if dynamic_groups(backend):
            # Our reading (UNCONFIRMED): dynamic thing groups live on the index; AWS must keep it.
            names = ", ".join(list(dynamic_groups(backend))[:5])
            raise InvalidRequestException(
                f"Thing indexing cannot be turned off while dynamic thing groups exist ({names}); delete them first"
            )
    # Our reading: named shadows are shadow data, indexed only with REGISTRY_AND_SHADOW.
    if config["namedShadowIndexingMode"] == "ON" and mode != "REGISTRY_AND_SHADOW":
        raise InvalidRequestException("namedShadowIndexingMode ON needs thingIndexingMode REGISTRY_AND_SHADOW")
    shadow_filter = given.get("filter") or {}
    names = shadow_filter.get("namedShadowNames") or []
    if len(names) > 10:
        raise InvalidRequestException(f"filter.namedShadowNames: at most 10 names (default quota), got {len(names)}")
    if shadow_filter:
        config["filter"] = shadow_filter
    if given.get("customFields"):
        config["customFields"] = given["customFields"]
    return config


def get_indexing_configuration(self: IoTResponse) -> ActionResult:
    indexing = _state(self.iot_backend)["indexing"]
    return ActionResult(
        {"thingIndexingConfiguration": indexing["thing"], "thingGroupIndexingConfiguration": indexing["group"]}
    )


def update_indexing_configuration(self: IoTResponse) -> ActionResult:
    params = fidelity_params(self)
    backend = self.iot_backend
    indexing = _state(backend)["indexing"]
    thing = params.get("thingIndexingConfiguration")
    group = params.get("thingGroupIndexingConfiguration")
    new_thing = _thing_configuration(backend, thing) if thing is not None else indexing["thing"]
    new_group = dict(group) if group is not None else indexing["group"]
    indexing["thing"], indexing["group"] = new_thing, new_group
    return EmptyResult()


# --------------------------------------------------------------------------- SearchIndex


def _document(backend: IoTBackend, thing: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "thingName": thing.thing_name,
        "thingId": thing.thing_id,
        "attributes": dict(thing.attributes or {}),
        "thingGroupNames": static_group_names(backend, thing),
    }
    if thing.thing_type:
        document["thingTypeName"] = thing.thing_type.thing_type_name
    return document


def _check_index(backend: IoTBackend, index_name: Any) -> None:
    name = index_name or THING_INDEX
    if name == GROUP_INDEX:
        if _state(backend)["indexing"]["group"].get("thingGroupIndexingMode") != "ON":
            raise ResourceNotFoundException(f"Index {name} does not exist: thing group indexing is OFF")
        raise InvalidRequestException(f"the local endpoint does not emulate searching {GROUP_INDEX}")
    if name != THING_INDEX:
        raise ResourceNotFoundException(f"Index {name} does not exist")
    if not thing_indexing_on(backend):
        # Our reading: thingIndexingMode OFF means "no indexing / delete the index" (developer guide).
        raise ResourceNotFoundException(
            f"Index {THING_INDEX} does not exist: thing indexing is OFF (UpdateIndexingConfiguration turns it on)"
        )


def _check_query_version(version: Any) -> None:
    if version not in (None, "", QUERY_VERSION):
        raise InvalidRequestException(f"queryVersion: only {QUERY_VERSION} is supported, got {version!r}")


def search_index(self: IoTResponse) -> ActionResult:
    params = fidelity_params(self)
    backend = self.iot_backend
    _check_index(backend, params.get("indexName"))
    _check_query_version(params.get("queryVersion"))
    query = parse_query(params.get("queryString"))
    raw_limit = params.get("maxResults")
    limit = int(raw_limit) if raw_limit is not None else min(OPTIONS.default_page_size, SEARCH_MAX_RESULTS)
    if not 1 <= limit <= SEARCH_MAX_RESULTS:
        raise InvalidRequestException(f"maxResults: at most {SEARCH_MAX_RESULTS}, got {limit}")
    token = params.get("nextToken")
    if token:
        fidelity_paging.decode_token(token)
    refresh_dynamic_groups(backend)
    found = [_document(backend, t) for t in backend.things.values() if matches(backend, t, query)]
    found.sort(key=lambda d: d["thingName"])
    items, next_token = fidelity_paging.page(found, limit, token)
    body: dict[str, Any] = {"things": items, "thingGroups": []}
    if next_token:
        body["nextToken"] = next_token
    return ActionResult(body)


# --------------------------------------------------------------------------- dynamic thing groups


def refresh_dynamic_groups(backend: IoTBackend) -> None:
    """Each dynamic group's members become the things its query matches now (AWS keeps them current)."""
    groups = dynamic_groups(backend)
    if not groups:
        return
    by_name = {g.thing_group_name: g for g in backend.thing_groups.values()}
    for name, spec in groups.items():
        group = by_name.get(name)
        if group is None:
            continue
        members = [t for t in backend.things.values() if matches(backend, t, spec["query"])]
        group.things = OrderedDict((t.arn, t) for t in members)


def _find_group(backend: IoTBackend, name: str) -> Any:
    return next((g for g in backend.thing_groups.values() if g.thing_group_name == name), None)


def _check_expected_version(group: Any, expected: Any) -> None:
    if expected is not None and int(expected) != group.version:
        raise VersionConflictException(group.thing_group_name)


def _dynamic_spec(backend: IoTBackend, params: dict[str, Any]) -> dict[str, Any]:
    if not thing_indexing_on(backend):
        # Developer guide: "Dynamic thing groups require fleet indexing enabled". The code is our reading.
        raise InvalidRequestException(
            "Dynamic thing groups need fleet indexing: thingIndexingMode is OFF (UpdateIndexingConfiguration)"
        )
    index = params.get("indexName") or THING_INDEX
    if index != THING_INDEX:
        raise ResourceNotFoundException(f"Index {index} does not exist; dynamic thing groups use {THING_INDEX}")
    version = params.get("queryVersion") or QUERY_VERSION
    _check_query_version(version)
    text = params.get("queryString")
    return {"queryString": text, "indexName": index, "queryVersion": version, "query": parse_query(text)}


def create_dynamic_thing_group(self: IoTResponse) -> ActionResult:
    params = fidelity_params(self)
    backend = self.iot_backend
    name = params["thingGroupName"]
    spec = _dynamic_spec(backend, params)
    tags = tagging_api._limit(tagging_api.validate_tags(params.get("tags")), "InvalidRequestException")
    properties = params.get("thingGroupProperties") or {}
    existing = _find_group(backend, name)
    groups = dynamic_groups(backend)
    if existing is not None:
        same = name in groups and groups[name]["queryString"] == spec["queryString"]
        if not same or existing.thing_group_properties != properties:
            raise ResourceAlreadyExistsException(
                f"Thing Group {name} already exists in current account with different properties",
                existing.thing_group_id,
                existing.arn,
            )
        group = existing
    else:
        if len(groups) >= MAX_DYNAMIC_GROUPS:
            raise LimitExceededException(f"At most {MAX_DYNAMIC_GROUPS} dynamic thing groups per account and region")
        backend.create_thing_group(name, None, properties)
        group = _find_group(backend, name)
        groups[name] = spec
        store = tagging_api.state_of(backend).tags
        store.pop(group.arn, None)
        if tags:
            store[group.arn] = tags
    refresh_dynamic_groups(backend)
    return ActionResult(
        {
            "thingGroupName": name,
            "thingGroupArn": group.arn,
            "thingGroupId": group.thing_group_id,
            "indexName": spec["indexName"],
            "queryString": spec["queryString"],
            "queryVersion": spec["queryVersion"],
        }
    )


def update_dynamic_thing_group(self: IoTResponse) -> ActionResult:
    params = fidelity_params(self)
    backend = self.iot_backend
    name = params["thingGroupName"]
    group = _find_group(backend, name)
    if group is None:
        raise ResourceNotFoundException(f"Thing Group {name} does not exist")
    groups = dynamic_groups(backend)
    if name not in groups:
        raise InvalidRequestException(f"Thing Group {name} is a static thing group; use UpdateThingGroup")
    _check_expected_version(group, params.get("expectedVersion"))
    current = groups[name]
    merged = {
        "indexName": params.get("indexName") or current["indexName"],
        "queryString": params.get("queryString") or current["queryString"],
        "queryVersion": params.get("queryVersion") or current["queryVersion"],
    }
    spec = _dynamic_spec(backend, merged)
    version = backend.update_thing_group(name, params.get("thingGroupProperties") or {}, None)
    groups[name] = spec
    refresh_dynamic_groups(backend)
    return ActionResult({"version": version})


def delete_dynamic_thing_group(self: IoTResponse) -> ActionResult:
    params = fidelity_params(self)
    backend = self.iot_backend
    name = params["thingGroupName"]
    group = _find_group(backend, name)
    if group is None:
        return EmptyResult()  # as DeleteThingGroup: a missing group deletes fine (the model lists no NotFound)
    groups = dynamic_groups(backend)
    if name not in groups:
        raise InvalidRequestException(f"Thing Group {name} is a static thing group; use DeleteThingGroup")
    _check_expected_version(group, params.get("expectedVersion"))
    backend.delete_thing_group(name)
    groups.pop(name, None)
    return EmptyResult()


def fidelity_params(response: IoTResponse) -> dict[str, Any]:
    """The request's parameters, parsed by the botocore model (body, URI and query string)."""
    response.parse_parameters(response.normalized_request)
    return dict(response.params)


def _refuse_dynamic(backend: IoTBackend, name: str | None, arn: str | None, what: str) -> None:
    groups = dynamic_groups(backend)
    if not groups:
        return
    if name is None and arn:
        name = arn.rsplit("/", 1)[-1]
    if name in groups:
        raise InvalidRequestException(f"Thing Group {name} is a dynamic thing group: {what}")


def _install_group_wrappers() -> None:
    @_wrap(IoTResponse, "describe_thing_group")
    def describe_thing_group(original: Callable[..., Any], self: IoTResponse) -> Any:
        result = original(self)
        name = self._get_param("thingGroupName")
        spec = dynamic_groups(self.iot_backend).get(name)
        if spec is not None:
            body = response_body(result, "dynamic thing groups in DescribeThingGroup")
            body.update(
                indexName=spec["indexName"],
                queryString=spec["queryString"],
                queryVersion=spec["queryVersion"],
                status="ACTIVE",
            )
        return result

    @_wrap(IoTResponse, "delete_thing_group")
    def delete_thing_group(original: Callable[..., Any], self: IoTResponse) -> Any:
        _refuse_dynamic(self.iot_backend, self._get_param("thingGroupName"), None, "use DeleteDynamicThingGroup")
        return original(self)

    @_wrap(IoTBackend, "create_thing_group")
    def create_thing_group(original: Callable[..., Any], self: IoTBackend, *args: Any, **kwargs: Any) -> Any:
        # Developer guide: "Dynamic thing groups can't be part of a hierarchy".
        parent = kwargs.get("parent_group_name", args[1] if len(args) > 1 else None)
        if parent:
            _refuse_dynamic(self, parent, None, "it cannot be a parent group")
        return original(self, *args, **kwargs)

    @_wrap(IoTBackend, "add_thing_to_thing_group")
    def add_thing_to_thing_group(original: Callable[..., Any], self: IoTBackend, *args: Any, **kwargs: Any) -> Any:
        group_name, group_arn = _group_args(args, kwargs)
        _refuse_dynamic(self, group_name, group_arn, "its members come from its query")
        refresh_dynamic_groups(self)
        return original(self, *args, **kwargs)

    @_wrap(IoTBackend, "remove_thing_from_thing_group")
    def remove_thing_from_thing_group(original: Callable[..., Any], self: IoTBackend, *args: Any, **kwargs: Any) -> Any:
        group_name, group_arn = _group_args(args, kwargs)
        _refuse_dynamic(self, group_name, group_arn, "its members come from its query")
        return original(self, *args, **kwargs)

    @_wrap(IoTBackend, "update_thing_groups_for_thing")
    def update_thing_groups_for_thing(original: Callable[..., Any], self: IoTBackend, *args: Any, **kwargs: Any) -> Any:
        to_add = kwargs.get("thing_groups_to_add", args[1] if len(args) > 1 else None)
        to_remove = kwargs.get("thing_groups_to_remove", args[2] if len(args) > 2 else None)
        for name in [*(to_add or []), *(to_remove or [])]:
            _refuse_dynamic(self, name, None, "its members come from its query")
        refresh_dynamic_groups(self)
        return original(self, *args, **kwargs)

    for method in ("list_things_in_thing_group", "list_thing_groups_for_thing"):
        _wrap(IoTBackend, method)(_refreshing)

    @_wrap(IoTBackend, "attach_policy")
    def attach_policy(original: Callable[..., Any], self: IoTBackend, *args: Any, **kwargs: Any) -> Any:
        # Developer guide: "Dynamic thing groups can't have policies applied to them".
        target = str(kwargs.get("target", args[1] if len(args) > 1 else ""))
        if ":thinggroup/" in target:
            _refuse_dynamic(self, None, target, "it cannot have policies attached")
        return original(self, *args, **kwargs)


def _refreshing(original: Callable[..., Any], self: IoTBackend, *args: Any, **kwargs: Any) -> Any:
    refresh_dynamic_groups(self)
    return original(self, *args, **kwargs)


def _group_args(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[str | None, str | None]:
    name = kwargs.get("thing_group_name", args[0] if args else None)
    arn = kwargs.get("thing_group_arn", args[1] if len(args) > 1 else None)
    return name, arn


# --------------------------------------------------------------------------- billing groups


def _billing_group(backend: IoTBackend, name: str | None, arn: str | None) -> Any:
    key = name or (arn.rsplit("/", 1)[-1] if arn else None)
    if key is None:
        raise InvalidRequestException("billingGroupName or billingGroupArn is required")
    group = backend.billing_groups.get(key)
    if group is None:
        raise ResourceNotFoundException(f"Billing group {key} does not exist")
    return group


def _install_billing_groups() -> None:
    @_wrap(IoTResponse, "describe_billing_group")
    def describe_billing_group(original: Callable[..., Any], self: IoTResponse) -> Any:
        result = original(self)
        group = self.iot_backend.billing_groups[self._get_param("billingGroupName")]
        response_body(result, "version in DescribeBillingGroup")["version"] = group.version  # model has it
        return result

    # Developer guide "Billing groups": DescribeThing returns *the* billing group a thing belongs to: one at a
    # time. Adding a thing that is in another billing group is refused here (our reading, UNCONFIRMED: AWS may
    # move it instead); RemoveThingFromBillingGroup first works either way.
    @_wrap(IoTBackend, "add_thing_to_billing_group")
    def add_thing_to_billing_group(
        original: Callable[..., Any],
        self: IoTBackend,
        billing_group_name: str | None = None,
        billing_group_arn: str | None = None,
        thing_name: str | None = None,
        thing_arn: str | None = None,
    ) -> None:
        group = _billing_group(self, billing_group_name, billing_group_arn)
        thing = (
            self.describe_thing(thing_name) if thing_name else self.describe_thing((thing_arn or "/").split("/")[-1])
        )
        current = thing.billing_group_name
        if current and current != group.billing_group_name and current in self.billing_groups:
            raise InvalidRequestException(
                f"Thing {thing.thing_name} is already in billing group {current}; a thing is in one billing group "
                "at a time: remove it from that group first"
            )
        original(self, billing_group_name, billing_group_arn, thing_name, thing_arn)

    # The model lists no ResourceNotFoundException for DeleteBillingGroup: a missing group deletes fine (as
    # DeleteThingGroup). Its things are no longer in a billing group (moto left them pointing at it).
    @_wrap(IoTBackend, "delete_billing_group")
    def delete_billing_group(original: Callable[..., Any], self: IoTBackend, billing_group_name: str) -> None:
        group = self.billing_groups.get(billing_group_name)  # moto calls it with the keyword
        if group is None:
            return
        for thing in self.things.values():
            if thing.billing_group_name == billing_group_name:
                thing.billing_group_name = None
        original(self, billing_group_name)

    @_wrap(IoTResponse, "delete_billing_group")
    def delete_billing_group_response(original: Callable[..., Any], self: IoTResponse) -> Any:
        group = self.iot_backend.billing_groups.get(self._get_param("billingGroupName"))
        expected = self._get_param("expectedVersion")
        if group is not None and expected is not None and int(expected) != group.version:
            raise VersionConflictException(group.billing_group_name)
        return original(self)

    for operation in ("ListBillingGroups", "ListThingsInBillingGroup"):
        fidelity_paging._install_one(operation, fidelity_paging.paginator_config()[operation])


# --------------------------------------------------------------------------- seeding (tests)


def _seed_one(backend: IoTBackend, item: Any, groups: dict[str, Any]) -> None:
    name = item.get("thingName") if isinstance(item, dict) else None
    if not isinstance(name, str) or not _THING_NAME_RE.match(name):
        raise ValueError(f"thingName {name!r}: 1-128 letters, digits, ':', '_' or '-'")
    type_name = item.get("thingTypeName")
    thing_type = next((t for t in backend.thing_types.values() if t.thing_type_name == type_name), None)
    if type_name and thing_type is None:
        raise ValueError(f"thing type {type_name} does not exist")
    attributes = dict(item.get("attributes") or {})
    if len(attributes) > (50 if thing_type else 3):
        raise ValueError(f"thing {name}: {len(attributes)} attributes, more than AWS allows")
    billing = item.get("billingGroup")
    if billing and billing not in backend.billing_groups:
        raise ValueError(f"billing group {billing} does not exist")
    wanted = [groups.get(g) for g in item.get("thingGroups") or []]
    if None in wanted:
        raise ValueError(f"thing {name}: a thing group of {item.get('thingGroups')} does not exist")
    thing = FakeThing(name, thing_type, attributes, backend.account_id, backend.region_name, billing or None)
    if thing.arn in backend.things:
        raise ValueError(f"thing {name} already exists")
    backend.things[thing.arn] = thing
    for group in wanted:
        group.things[thing.arn] = thing
    if billing:
        backend.billing_groups[billing].things.append(thing.arn)


def seed_route(method: str, environ: dict[str, Any]) -> tuple[str, Any]:
    """``POST /_local/registry/seed`` {"region", "accountId"?, "things": [{thingName, thingTypeName?, attributes?,
    thingGroups?, billingGroup?}]}: many things in one request, written straight into moto's backend (one HTTP
    call per thing would make a test with thousands of things slow). Checked: the name pattern, a name not taken,
    the type, groups and billing group exist, the attribute count. Not checked: the rules for many groups per
    thing (use the API for those). The first bad item stops the seeding with 400 and the reason."""
    if method != "POST":
        return "405 Method Not Allowed", {"error": "POST a JSON object with region and things"}
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        request = json.loads(environ["wsgi.input"].read(length) if length > 0 else b"null")
    except ValueError:
        request = None
    if not isinstance(request, dict) or not isinstance(request.get("things"), list) or not request.get("region"):
        return "400 Bad Request", {"error": "the body must be a JSON object with 'region' and a 'things' list"}
    backend = iot_backends[str(request.get("accountId") or DEFAULT_ACCOUNT_ID)][str(request["region"])]
    created = 0
    with STATE_LOCK:
        groups = {g.thing_group_name: g for g in backend.thing_groups.values()}
        try:
            for item in request["things"]:
                _seed_one(backend, item, groups)
                created += 1
        except ValueError as error:
            return "400 Bad Request", {"error": str(error), "created": created}
    return "200 OK", {"created": created}


seed_route.takes_environ = True  # type: ignore[attr-defined]

CONTROL_ROUTES: dict[str, Callable[..., tuple[str, Any]]] = {"/_local/registry/seed": seed_route}


def install() -> None:
    """Serve the APIs and wrap moto's (idempotent). Call after fidelity.install() and tagging_api.install()."""
    global _INSTALLED
    if _INSTALLED:
        return
    IoTResponse.get_indexing_configuration = get_indexing_configuration  # type: ignore[method-assign]
    IoTResponse.update_indexing_configuration = update_indexing_configuration  # type: ignore[method-assign]
    IoTResponse.search_index = search_index  # type: ignore[method-assign]
    IoTResponse.create_dynamic_thing_group = create_dynamic_thing_group  # type: ignore[attr-defined]
    IoTResponse.update_dynamic_thing_group = update_dynamic_thing_group  # type: ignore[attr-defined]
    IoTResponse.delete_dynamic_thing_group = delete_dynamic_thing_group  # type: ignore[attr-defined]
    _install_group_wrappers()
    _install_billing_groups()
    _INSTALLED = True
