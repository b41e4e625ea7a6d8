"""kopf's settings as the operator configures them: what the load bench measured to hold memory."""

from __future__ import annotations

import kopf

from kubeopt.controller.main import configure


def test_kopf_works_on_a_bounded_number_of_objects_at_once_and_frees_an_idle_slot_within_a_second() -> None:
    settings = kopf.OperatorSettings()

    configure(settings)

    # Unbounded, a burst of 1,000 resources opened ~620 TLS connections (bench/results/operator_load.md).
    assert settings.queueing.worker_limit is not None and settings.queueing.worker_limit <= 100
    # With kopf's 5 s an idle worker held its slot so long that a bounded burst stalled.
    assert settings.queueing.idle_timeout <= 1.0
