"""Fidelity fixes for things, thing types and thing groups (see README.md for the table)."""

from __future__ import annotations

from typing import Any, Callable

from fidelity_core import (
    OPTIONS,
    InvalidRequestException,
    ResourceAlreadyExistsException,
    VersionConflictException,
    _wrap,
    local_state,
    now,
    response_body,
)
from moto.core.responses import EmptyResult
from moto.core.utils import utcnow
from moto.iot.models import IoTBackend
from moto.iot.responses import IoTResponse

MAX_ATTRIBUTES_WITHOUT_TYPE = 3
MAX_ATTRIBUTES_WITH_TYPE = 50
MAX_SEARCHABLE_ATTRIBUTES = 3
MAX_GROUPS_PER_THING = 10
MAX_GROUP_DEPTH = 7
MAX_CHILD_GROUPS = 100


def _find_thing(backend: IoTBackend, thing_name: str) -> Any:
    return next((t for t in backend.things.values() if t.thing_name == thing_name), None)


def _check_attribute_count(attributes: dict[str, Any], thing_type_name: str | None) -> None:
    limit = MAX_ATTRIBUTES_WITH_TYPE if thing_type_name else MAX_ATTRIBUTES_WITHOUT_TYPE
    if len(attributes) > limit:
        kind = "with a thing type" if thing_type_name else "without a thing type"
        raise InvalidRequestException(
            f"Number of attributes exceeds the limit: a thing {kind} can have at most {limit} attributes, "
            f"got {len(attributes)}"
        )


def attached_or_settling(backend: IoTBackend, thing_name: str) -> bool:
    """True while a principal is attached to the thing, or was detached less than the consistency delay ago."""
    if any(key[1] == thing_name for key in backend.principal_things):
        return True
    detached = local_state(backend).get("detached_at", {})
    return any(key[1] == thing_name and now() - at < OPTIONS.detach_consistency_delay for key, at in detached.items())


# --- things -------------------------------------------------------------------------------------------------


def _install_things() -> None:
    # AWS: CreateThing for an existing name succeeds (and returns the same thing) only when the
    # configuration is identical; otherwise ResourceAlreadyExistsException. Also the attribute limits.
    @_wrap(IoTBackend, "create_thing")
    def create_thing(
        original: Callable[..., Any],
        self: IoTBackend,
        thing_name: str,
        thing_type_name: str,
        attribute_payload: dict[str, Any] | None,
        billing_group_name: str | None = None,
    ) -> Any:
        wanted_attributes = (attribute_payload or {}).get("attributes", {}) or {}
        _check_attribute_count(wanted_attributes, thing_type_name)
        existing = _find_thing(self, thing_name)
        if existing is not None:
            existing_type = existing.thing_type.thing_type_name if existing.thing_type else None
            if existing.attributes != wanted_attributes or (existing_type or None) != (thing_type_name or None):
                raise ResourceAlreadyExistsException(
                    f"Thing {thing_name} already exists in account with different attributes",
                    thing_name,
                    existing.arn,
                )
            return existing
        return original(self, thing_name, thing_type_name, attribute_payload, billing_group_name)

    # AWS: at most 3 attributes without a thing type, 50 with one, counted on the thing as it would be after
    # the update (merge keeps the others; an empty value removes an attribute; the type may change too).
    @_wrap(IoTBackend, "update_thing")
    def update_thing(
        original: Callable[..., Any],
        self: IoTBackend,
        thing_name: str,
        thing_type_name: str,
        attribute_payload: dict[str, Any] | None,
        remove_thing_type: bool,
    ) -> Any:
        thing = self.describe_thing(thing_name)
        if remove_thing_type and thing_type_name:
            return original(self, thing_name, thing_type_name, attribute_payload, remove_thing_type)  # moto refuses
        if remove_thing_type:
            new_type = None
        elif thing_type_name:
            new_type = thing_type_name
        else:
            new_type = thing.thing_type.thing_type_name if thing.thing_type else None
        attributes = dict(thing.attributes)
        if attribute_payload is not None and "attributes" in attribute_payload:
            attributes = attributes if attribute_payload.get("merge", False) else {}
            attributes.update(attribute_payload["attributes"] or {})
            attributes = {key: value for key, value in attributes.items() if value}
        _check_attribute_count(attributes, new_type)
        return original(self, thing_name, thing_type_name, attribute_payload, remove_thing_type)

    # AWS: every UpdateThing increments the thing's version; expectedVersion must match it
    # (VersionConflictException otherwise).
    @_wrap(IoTResponse, "update_thing")
    def update_thing_response(original: Callable[..., Any], self: IoTResponse) -> Any:
        thing = self.iot_backend.describe_thing(self._get_param("thingName"))
        expected = self._get_param("expectedVersion")
        if expected is not None and int(expected) != thing.version:
            raise VersionConflictException(thing.thing_name)
        result = original(self)
        thing.version += 1
        return result

    # AWS: DeleteThing succeeds for a thing that does not exist; refuses (InvalidRequestException, HTTP 400)
    # while principals are attached, including shortly after a detach (eventual consistency); honours
    # expectedVersion; and the thing leaves every thing group it was in.
    @_wrap(IoTBackend, "delete_thing")
    def delete_thing(original: Callable[..., Any], self: IoTBackend, thing_name: str) -> None:
        thing = _find_thing(self, thing_name)
        if thing is None:
            return
        if attached_or_settling(self, thing_name):
            raise InvalidRequestException(
                f"Cannot delete. Thing {thing_name} is still attached to one or more principals"
            )
        original(self, thing_name)
        for group in self.thing_groups.values():
            group.things.pop(thing.arn, None)

    @_wrap(IoTResponse, "delete_thing")
    def delete_thing_response(original: Callable[..., Any], self: IoTResponse) -> Any:
        thing = _find_thing(self.iot_backend, self._get_param("thingName"))
        expected = self._get_param("expectedVersion")
        if thing is not None and expected not in (None, "") and int(expected) != thing.version:
            raise VersionConflictException(thing.thing_name)
        return original(self)


# --- thing types --------------------------------------------------------------------------------------------


def _type_identity(properties: dict[str, Any] | None) -> tuple[Any, ...]:
    properties = properties or {}
    return (
        properties.get("thingTypeDescription") or None,
        frozenset(properties.get("searchableAttributes") or ()),
        repr(properties.get("mqtt5Configuration") or None),
    )


def _install_thing_types() -> None:
    # AWS: at most 3 searchable attributes; CreateThingType for an existing name returns that type when the
    # properties are the same and raises ResourceAlreadyExistsException when they differ (moto replaced it).
    @_wrap(IoTBackend, "create_thing_type")
    def create_thing_type(
        original: Callable[..., Any], self: IoTBackend, thing_type_name: str, thing_type_properties: dict[str, Any]
    ) -> Any:
        searchable = (thing_type_properties or {}).get("searchableAttributes") or []
        if len(searchable) > MAX_SEARCHABLE_ATTRIBUTES:
            raise InvalidRequestException(
                f"A thing type can have at most {MAX_SEARCHABLE_ATTRIBUTES} searchable attributes, "
                f"got {len(searchable)}"
            )
        existing = next((t for t in self.thing_types.values() if t.thing_type_name == thing_type_name), None)
        if existing is not None:
            if _type_identity(existing.thing_type_properties) != _type_identity(thing_type_properties):
                raise ResourceAlreadyExistsException(
                    f"Thing type {thing_type_name} already exists with different properties",
                    existing.thing_type_id,
                    existing.arn,
                )
            return existing.thing_type_name, existing.arn
        return original(self, thing_type_name, thing_type_properties)

    # AWS: the CreateThingType response carries thingTypeId as well.
    @_wrap(IoTResponse, "create_thing_type")
    def create_thing_type_response(original: Callable[..., Any], self: IoTResponse) -> Any:
        result = original(self)
        body = response_body(result, "thing type id", "thingTypeName")
        if body.get("thingTypeName"):
            body["thingTypeId"] = self.iot_backend.describe_thing_type(body["thingTypeName"]).thing_type_id
        return result

    # AWS: deprecation is timestamped (thingTypeMetadata.deprecationDate); the delete wait counts from it.
    @_wrap(IoTBackend, "deprecate_thing_type")
    def deprecate_thing_type(
        original: Callable[..., Any], self: IoTBackend, thing_type_name: str, undo_deprecate: bool
    ) -> Any:
        was_deprecated = self.describe_thing_type(thing_type_name).metadata["deprecated"]
        thing_type = original(self, thing_type_name, undo_deprecate)
        deprecated_at = local_state(self).setdefault("deprecated_at", {})
        if undo_deprecate:
            deprecated_at.pop(thing_type_name, None)
            thing_type.metadata.pop("deprecationDate", None)
        elif not was_deprecated:
            deprecated_at[thing_type_name] = now()
            thing_type.metadata["deprecationDate"] = utcnow()
        return thing_type

    # AWS: a thing type can be deleted only once deprecated, 5 minutes after the deprecation, and with no
    # things still using it (InvalidRequestException otherwise).
    @_wrap(IoTBackend, "delete_thing_type")
    def delete_thing_type(original: Callable[..., Any], self: IoTBackend, thing_type_name: str) -> None:
        thing_type = self.describe_thing_type(thing_type_name)
        if not thing_type.metadata["deprecated"]:
            raise InvalidRequestException(
                f"Thing type {thing_type_name} is not deprecated: deprecate it before deleting it"
            )
        since = local_state(self).setdefault("deprecated_at", {}).setdefault(thing_type_name, now())
        waited = now() - since
        if waited < OPTIONS.thing_type_delete_wait:
            raise InvalidRequestException(
                f"Thing type {thing_type_name} was deprecated {waited:.0f} seconds ago; it can be deleted "
                f"{OPTIONS.thing_type_delete_wait:.0f} seconds after its deprecation"
            )
        if any(
            t.thing_type is not None and t.thing_type.thing_type_name == thing_type_name for t in self.things.values()
        ):
            raise InvalidRequestException(f"Thing type {thing_type_name} is still associated with one or more things")
        original(self, thing_type_name)
        local_state(self)["deprecated_at"].pop(thing_type_name, None)

    IoTResponse.update_thing_type = _update_thing_type


def _update_thing_type(self: IoTResponse) -> Any:
    """UpdateThingType, which moto lacks: replaces the type's properties (description, searchable attributes,
    MQTT 5 configuration). AWS refuses it for a deprecated type (InvalidRequestException)."""
    self.parse_parameters(self.normalized_request)
    params = dict(self.params)
    thing_type = self.iot_backend.describe_thing_type(params["thingTypeName"])
    if thing_type.metadata["deprecated"]:
        raise InvalidRequestException(f"Thing type {thing_type.thing_type_name} is deprecated and cannot be updated")
    properties = params.get("thingTypeProperties") or {}
    if len(properties.get("searchableAttributes") or []) > MAX_SEARCHABLE_ATTRIBUTES:
        raise InvalidRequestException(
            f"A thing type can have at most {MAX_SEARCHABLE_ATTRIBUTES} searchable attributes"
        )
    thing_type.thing_type_properties = properties
    return EmptyResult()


# --- thing groups -------------------------------------------------------------------------------------------


def _root_of(group: Any) -> str:
    chain = group.metadata.get("rootToParentThingGroups") or []
    return chain[0]["groupName"] if chain else group.thing_group_name


def _check_memberships(thing_name: str, groups: list[Any]) -> None:
    if len(groups) > MAX_GROUPS_PER_THING:
        raise InvalidRequestException(
            f"Thing {thing_name} cannot be in more than {MAX_GROUPS_PER_THING} thing groups, got {len(groups)}"
        )
    roots: dict[str, str] = {}
    for group in groups:
        root = _root_of(group)
        if root in roots:
            raise InvalidRequestException(
                f"Thing {thing_name} cannot be in both {roots[root]} and {group.thing_group_name}: "
                "a thing can be in only one group of a hierarchy"
            )
        roots[root] = group.thing_group_name


def _install_thing_groups() -> None:
    # AWS: the parent must exist; a hierarchy is at most 7 deep; a group has at most 100 direct children.
    @_wrap(IoTBackend, "create_thing_group")
    def create_thing_group(
        original: Callable[..., Any],
        self: IoTBackend,
        thing_group_name: str,
        parent_group_name: str,
        thing_group_properties: dict[str, Any],
    ) -> Any:
        exists = any(g.thing_group_name == thing_group_name for g in self.thing_groups.values())
        if parent_group_name and not exists:
            parent = next((g for g in self.thing_groups.values() if g.thing_group_name == parent_group_name), None)
            if parent is None:
                raise InvalidRequestException(f"Parent thing group {parent_group_name} does not exist")
            depth = len(parent.metadata.get("rootToParentThingGroups") or []) + 2
            if depth > MAX_GROUP_DEPTH:
                raise InvalidRequestException(
                    f"Thing group {thing_group_name} would be at depth {depth}; a hierarchy is at most "
                    f"{MAX_GROUP_DEPTH} groups deep"
                )
            children = sum(1 for g in self.thing_groups.values() if g.parent_group_name == parent_group_name)
            if children >= MAX_CHILD_GROUPS:
                raise InvalidRequestException(
                    f"Thing group {parent_group_name} already has {MAX_CHILD_GROUPS} child groups, the maximum"
                )
        return original(self, thing_group_name, parent_group_name, thing_group_properties)

    # AWS: replacing attributes with an empty map clears them; with merge an empty value removes one
    # (moto ignored an empty map and kept empty values).
    @_wrap(IoTBackend, "update_thing_group")
    def update_thing_group(
        original: Callable[..., Any],
        self: IoTBackend,
        thing_group_name: str,
        thing_group_properties: dict[str, Any],
        expected_version: int,
    ) -> int:
        group = self.describe_thing_group(thing_group_name)
        payload = (thing_group_properties or {}).get("attributePayload")
        current = dict((group.thing_group_properties.get("attributePayload") or {}).get("attributes") or {})
        version = original(self, thing_group_name, thing_group_properties, expected_version)
        if payload is not None and "attributes" in payload:
            attributes = current if payload.get("merge", False) else {}
            attributes.update(payload["attributes"] or {})
            attributes = {key: value for key, value in attributes.items() if value}
            group.thing_group_properties["attributePayload"] = {"attributes": attributes}
        return version

    # AWS: a thing is in at most 10 thing groups, and in at most one group of any hierarchy.
    @_wrap(IoTBackend, "add_thing_to_thing_group")
    def add_thing_to_thing_group(
        original: Callable[..., Any],
        self: IoTBackend,
        thing_group_name: str,
        thing_group_arn: str | None,
        thing_name: str,
        thing_arn: str | None,
    ) -> None:
        group = self._identify_thing_group(thing_group_name, thing_group_arn)
        thing = self._identify_thing(thing_name, thing_arn)
        if thing.arn not in group.things:
            current = [g for g in self.thing_groups.values() if thing.arn in g.things]
            _check_memberships(thing.thing_name, [*current, group])
        original(self, thing_group_name, thing_group_arn, thing_name, thing_arn)

    # The same limits for UpdateThingGroupsForThing, on the memberships the call would leave; the call is
    # applied whole or not at all, removals first.
    @_wrap(IoTBackend, "update_thing_groups_for_thing")
    def update_thing_groups_for_thing(
        original: Callable[..., Any],
        self: IoTBackend,
        thing_name: str,
        thing_groups_to_add: list[str],
        thing_groups_to_remove: list[str],
    ) -> None:
        thing = self.describe_thing(thing_name)
        adding = [self.describe_thing_group(name) for name in thing_groups_to_add or []]
        removing = [self.describe_thing_group(name) for name in thing_groups_to_remove or []]
        removed = {g.arn for g in removing}
        final = [g for g in self.thing_groups.values() if thing.arn in g.things and g.arn not in removed]
        final += [g for g in adding if g not in final]
        _check_memberships(thing_name, final)
        for group in removing:
            group.things.pop(thing.arn, None)
        for group in adding:
            group.things[thing.arn] = thing


def _descendants(backend: IoTBackend, group_name: str) -> list[Any]:
    children = [g for g in backend.thing_groups.values() if g.parent_group_name == group_name]
    return [item for child in children for item in (child, *_descendants(backend, child.thing_group_name))]


def _install_recursive_listing() -> None:
    # AWS: ListThingsInThingGroup with recursive=true lists the things of the group and of all its child groups
    # (moto ignored the parameter).
    @_wrap(IoTResponse, "list_things_in_thing_group")
    def list_things_in_thing_group(original: Callable[..., Any], self: IoTResponse) -> Any:
        result = original(self)
        if str(self._get_param("recursive", "false")).lower() != "true":
            return result
        backend = self.iot_backend
        group = backend.describe_thing_group(self._get_param("thingGroupName"))
        names: list[str] = []
        for member in (group, *_descendants(backend, group.thing_group_name)):
            names += [thing.thing_name for thing in member.things.values() if thing.thing_name not in names]
        response_body(result, "recursive thing group listing")["things"] = names
        return result


def install() -> None:
    _install_recursive_listing()
    _install_things()
    _install_thing_types()
    _install_thing_groups()
