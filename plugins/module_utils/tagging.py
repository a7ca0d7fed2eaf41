# -*- coding: utf-8 -*-
# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tags of IoT resources: a dict in and out, `aws:` tags never purged."""

from __future__ import annotations

from typing import Any

from ansible_collections.iotfleet.provisioning.plugins.module_utils.validation import check_tags


def validate_tags(field: str, tags: dict[str, Any] | None) -> dict[str, str] | None:
    """None (leave tags alone) or the checked tags (see validation.check_tags for the rules)."""
    return None if tags is None else check_tags(field, tags)


def read_tags(client: Any, arn: str) -> dict[str, str]:
    tags: dict[str, str] = {}
    params: dict[str, Any] = {"resourceArn": arn}
    while True:
        page = client.list_tags_for_resource(**params)
        for tag in page.get("tags", []):
            tags[tag["Key"]] = tag.get("Value", "")
        if not page.get("nextToken"):
            return tags
        params["nextToken"] = page["nextToken"]


def desired_tags(current: dict[str, str], wanted: dict[str, str] | None, purge: bool) -> dict[str, str]:
    """The tags a resource should end with: unset keeps all; purge drops unlisted keys but never aws: ones."""
    if wanted is None:
        return dict(current)
    result = {k: v for k, v in current.items() if not purge or k.lower().startswith("aws:")}
    result.update(wanted)
    return result


def apply_tags(client: Any, arn: str, current: dict[str, str], target: dict[str, str]) -> bool:
    """Make the resource's tags `target` with the fewest calls; True when anything was sent."""
    to_set = {k: v for k, v in target.items() if current.get(k) != v}
    to_remove = [k for k in current if k not in target]
    if to_remove:
        client.untag_resource(resourceArn=arn, tagKeys=to_remove)
    if to_set:
        client.tag_resource(resourceArn=arn, tags=[{"Key": k, "Value": v} for k, v in to_set.items()])
    return bool(to_set or to_remove)
