"""Replicas: kopf peering so that exactly one operator acts, the oldest, and a standby waits.

kopf's peering (``kopf/_core/engines/peering.py``) keeps every operator's record (priority,
lifetime, last seen) in the status of one ``ClusterKopfPeering``. An operator pauses its watches
while it sees a live peer of higher priority; with *equal* priorities kopf pauses all of them
(a warning, no winner), so every replica needs a distinct priority. A record is live until
``lifetime`` seconds after its last keep-alive; a SIGKILLed operator's record therefore blocks
the standby for up to ``lifetime`` seconds, while a stopped one (SIGTERM) removes its record at
exit and the standby resumes at once. With ``mandatory`` peering kopf starts paused and resumes
only once the peering object shows no higher peer.

The priority falls with the start time (milliseconds), so the oldest replica wins and a new pod
of a rolling update stays standby until the old one exits, instead of taking over while the old
one still works. The last three digits come from the identity (the pod name), so two replicas
started in the same millisecond still differ. Job names are deterministic (``names.job_name``),
so even a moment of overlap (two replicas started together, before either saw the other) cannot
create a second Job: the API server refuses the second create.

Off (``standalone``) unless ``KUBEOPT_PEERING`` names the peering object: ``kubeopt operator``
run by hand, and the e2e suites, need no peering CRD.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass

PEERING_ENV = "KUBEOPT_PEERING"
LIFETIME_ENV = "KUBEOPT_PEERING_LIFETIME"
IDENTITY_ENV = "KUBEOPT_POD_NAME"
DEFAULT_LIFETIME = 15
MIN_LIFETIME = 2
TIE_BREAK = 1000


@dataclass(frozen=True)
class Peering:
    """How this replica takes part in kopf peering; ``name`` None: standalone."""

    name: str | None = None
    identity: str | None = None
    priority: int = 0
    lifetime: int = DEFAULT_LIFETIME

    @property
    def enabled(self) -> bool:
        return self.name is not None


def priority_of(started_ms: int, identity: str) -> int:
    """Higher for an older replica; the identity's hash breaks a tie of the same millisecond."""
    return -started_ms * TIE_BREAK + zlib.crc32(identity.encode()) % TIE_BREAK


def peering_from_env(env: Mapping[str, str], started_ms: int, fallback_identity: str) -> Peering:
    """``KUBEOPT_PEERING`` (the ClusterKopfPeering's name), ``KUBEOPT_PEERING_LIFETIME`` (seconds),
    ``KUBEOPT_POD_NAME`` (this replica's identity; the chart sets it from the pod's name)."""
    name = env.get(PEERING_ENV, "").strip()
    if not name:
        return Peering()
    raw = env.get(LIFETIME_ENV, "").strip() or str(DEFAULT_LIFETIME)
    try:
        lifetime = int(raw)
    except ValueError:
        raise ValueError(f"{LIFETIME_ENV}={raw!r} is not a whole number of seconds; "
                         f"set it to {MIN_LIFETIME} or more (default {DEFAULT_LIFETIME})") from None
    if lifetime < MIN_LIFETIME:
        raise ValueError(f"{LIFETIME_ENV}={lifetime} is too short: kopf renews a record every "
                         f"max(1, lifetime - 5..10) s; set it to {MIN_LIFETIME} or more")
    identity = env.get(IDENTITY_ENV, "").strip() or fallback_identity
    return Peering(name=name, identity=identity, priority=priority_of(started_ms, identity), lifetime=lifetime)
