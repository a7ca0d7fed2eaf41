# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Things, thing types and thing groups: validate, read, plan, ensure.

Every resource follows one path for check mode, diff and the real change:
``validate_*`` turns module parameters into a desired state (raising
``ValidationError`` before any client exists), ``read_*`` returns the resource
as a snake_case dict or None, ``plan_*`` compares the two and says which calls
would bring the resource to the desired state, and ``ensure_*`` runs the plan
(or, in check mode, returns what the plan predicts) as an ``ensure.Ensured``
(changed, before, after). The plan functions are pure, so the unit tests cover them without a
client.

Only what the user manages is compared: an option left unset keeps the remote
value, so server-added fields never cause a change.

The package, by resource: common (shared helpers, results), thing, thing_type, thing_group and
info (thing_info). Import each name from its module: this file re-exports nothing.
"""
