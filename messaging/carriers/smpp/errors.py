"""submit_sm_resp command_status -> the carrier error a connector reports (messaging.carriers.base).

| status | name | error | code |
| --- | --- | --- | --- |
| 0x58 | ESME_RTHROTTLED | TransientError (the session also pauses its sends) | throttled |
| 0x14 | ESME_RMSGQFUL | TransientError (the session also pauses its sends) | queue_full |
| 0x0A | ESME_RINVSRCADR | PermanentError | invalid_sender |
| 0x48, 0x49 | ESME_RINVSRCTON / NPI | PermanentError | invalid_sender |
| 0x0B | ESME_RINVDSTADR | PermanentError | invalid_destination |
| 0x50, 0x51 | ESME_RINVDSTTON / NPI | PermanentError | invalid_destination |
| 0x33, 0x44 | ESME_RINVNUMDESTS / ESME_RINVDESTFLAG | PermanentError | invalid_destination |
| 0x01 | ESME_RINVMSGLEN | PermanentError | invalid_message |
| 0x62 | ESME_RINVEXPIRY | PermanentError | invalid_validity |
| 0x45 | ESME_RSUBMITFAIL | RouteError | submit_failed |
| 0x08 | ESME_RSYSERR | RouteError | carrier_system_error |
| 0x04, 0x0D, 0x0E, 0x0F | ESME_RINVBNDSTS / RBINDFAIL / RINVPASWD / RINVSYSID | RouteError | bind_error |
| 0x03, 0x00000400-0x000004FF | ESME_RINVCMDID, vendor-specific | RouteError | carrier_error |
| anything else | | RouteError | carrier_error |

A destination-level refusal is final (PermanentError: no other route will take that number either);
everything that says the route or the carrier is at fault is a RouteError, which moves the message to
the next route. The SMPP status travels as carrier_error_code, "0x0000000B".
"""
from __future__ import annotations

from smpplib import consts

from messaging.carriers.base import CarrierError, PermanentError, RouteError, TransientError

THROTTLING = {consts.SMPP_ESME_RTHROTTLED: "throttled", consts.SMPP_ESME_RMSGQFUL: "queue_full"}

_PERMANENT = {
    consts.SMPP_ESME_RINVSRCADR: "invalid_sender",
    consts.SMPP_ESME_RINVSRCTON: "invalid_sender",
    consts.SMPP_ESME_RINVSRCNPI: "invalid_sender",
    consts.SMPP_ESME_RINVDSTADR: "invalid_destination",
    consts.SMPP_ESME_RINVDSTTON: "invalid_destination",
    consts.SMPP_ESME_RINVDSTNPI: "invalid_destination",
    0x33: "invalid_destination",  # ESME_RINVNUMDESTS
    0x44: "invalid_destination",  # ESME_RINVDESTFLAG
    consts.SMPP_ESME_RINVMSGLEN: "invalid_message",
    0x62: "invalid_validity",  # ESME_RINVEXPIRY
}
_ROUTE = {
    consts.SMPP_ESME_RSYSERR: "carrier_system_error",
    0x45: "submit_failed",  # ESME_RSUBMITFAIL
    consts.SMPP_ESME_RINVBNDSTS: "bind_error",
    consts.SMPP_ESME_RBINDFAIL: "bind_error",
    consts.SMPP_ESME_RINVPASWD: "bind_error",
    consts.SMPP_ESME_RINVSYSID: "bind_error",
}


def status_error(status: int) -> CarrierError:
    """The error for a non-zero submit_sm_resp status (see the table in the module docstring)."""
    hex_status = f"0x{status:08X}"
    description = consts.DESCRIPTIONS.get(status, "unknown status")
    if status in THROTTLING:
        return TransientError(THROTTLING[status], f"SMSC: {description}", carrier_error_code=hex_status)
    if status in _PERMANENT:
        return PermanentError(_PERMANENT[status], f"SMSC: {description}", carrier_error_code=hex_status)
    return RouteError(_ROUTE.get(status, "carrier_error"), f"SMSC: {description}", carrier_error_code=hex_status)
