"""An SMPP session's settings, read once from a CarrierConfig (kind "smpp")."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from messaging.carriers.config import CarrierConfig

DEFAULT_SOURCE_TON_NPI: Mapping[str, tuple[int, int]] = {
    "alphanumeric": (5, 0),
    "international": (1, 1),
    "short_code": (3, 0),
}
BINDS = ("transceiver", "transmitter", "receiver")


@dataclass(frozen=True)
class SessionSettings:
    """Everything a session needs but the password, which stays in the CarrierConfig's credentials.

    Times are seconds. `window`: submit_sm outstanding at once; `max_mps` 0: unlimited;
    `default_data_coding`: the data_coding written on GSM-7 submits (0, "SMSC default alphabet",
    unless the carrier documents another value for GSM 03.38); UCS-2 is always 8.
    """

    host: str
    port: int
    system_id: str
    system_type: str = ""
    bind: str = "transceiver"
    window: int = 10
    max_mps: float = 0
    enquire_link_seconds: float = 30.0
    enquire_link_timeout_seconds: float = 10.0
    tls: bool = False
    source_ton_npi: Mapping[str, tuple[int, int]] = field(default_factory=lambda: dict(DEFAULT_SOURCE_TON_NPI))
    default_data_coding: int = 0
    service_type: str = ""
    submit_timeout_seconds: float = 30.0
    connect_timeout_seconds: float = 10.0
    reconnect_min_seconds: float = 1.0
    reconnect_max_seconds: float = 60.0
    throttle_pause_seconds: float = 1.0
    receipt_hold_seconds: float = 10.0
    mo_reassembly_seconds: float = 300.0
    # A delivery of an MO within this long after it was stored is the same message (an SMSC whose
    # deliver_sm_resp was lost redelivers it; inbound.mo_dedupe_key); numbers.inbound.REDELIVERY_SECONDS.
    mo_redelivery_seconds: float = 86_400.0

    @classmethod
    def from_config(cls, config: CarrierConfig) -> SessionSettings:
        """Raises ValueError for a config that is not an SMPP one or lacks host, port or system_id."""
        if config.kind != "smpp":
            raise ValueError(f"carrier {config.name!r} is of kind {config.kind!r}, not smpp")
        values = dict(config.settings)
        missing = [name for name in ("host", "port", "system_id") if not values.get(name)]
        if missing:
            raise ValueError(f"carrier {config.name!r} lacks {', '.join(missing)}")
        if values.get("bind", "transceiver") not in BINDS:
            raise ValueError(f"carrier {config.name!r}: bind must be one of {', '.join(BINDS)}")
        known = {name: values[name] for name in cls.__dataclass_fields__ if name in values}
        ton_npi = {**DEFAULT_SOURCE_TON_NPI, **{kind: tuple(pair) for kind, pair in
                                               dict(values.get("source_ton_npi") or {}).items()}}
        known["source_ton_npi"] = ton_npi
        known["port"] = int(known["port"])
        return cls(**known)

    def enquire_link_timeout(self) -> float:
        return min(self.enquire_link_timeout_seconds, self.enquire_link_seconds)
