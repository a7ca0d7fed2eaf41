# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""AWS bulk thing registration tasks made declarative: plan offline, send only what must change.

Flow: ``validate_task(params)`` (options and devices, before any client exists) -> ``ensure_present``:
each device is rendered with the template and planned against the account with the template engine;
devices already provisioned as the template says are left out; a device that already has its certificate
but whose thing differs is updated with one RegisterThing naming that certificate (a task line would make
AWS issue a second certificate from the CSR); the rest go into one JSON-lines input file, uploaded to S3
and run as one StartThingRegistrationTask. The RESULTS and ERRORS reports are mapped back to devices by
line number: certificates to ``output_dir/<device>/certificate.pem.crt``, errors with device name and line.

Only one registration task runs per account: a running task is reported by its id before anything is
uploaded.

The package, by stage: spec (limits, the devices, validate_task), plan (per device, offline
against the template), task (the input file, starting and waiting for the task, its reports) and run
(ensure_present, results). Import each name from its stage module: the package re-exports nothing.
"""
