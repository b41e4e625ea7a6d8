"""Peering settings from the environment, and the priorities that make the oldest replica act."""

from __future__ import annotations

import kopf
import pytest

from kubeopt.controller.main import configure
from kubeopt.controller.peering import DEFAULT_LIFETIME, Peering, peering_from_env, priority_of

STARTED = 1_795_973_257_693


def test_without_kubeopt_peering_the_operator_runs_standalone() -> None:
    peering = peering_from_env({}, STARTED, "host/1")
    settings = kopf.OperatorSettings()

    configure(settings, peering)

    assert not peering.enabled
    assert settings.peering.standalone


def test_kubeopt_peering_makes_peering_mandatory_in_the_named_cluster_wide_object() -> None:
    peering = peering_from_env({"KUBEOPT_PEERING": "kubeopt", "KUBEOPT_POD_NAME": "kubeopt-abc"}, STARTED, "host/1")
    settings = kopf.OperatorSettings()

    configure(settings, peering)

    assert not settings.peering.standalone
    assert settings.peering.mandatory and settings.peering.clusterwide
    assert (settings.peering.name, settings.peering.lifetime) == ("kubeopt", DEFAULT_LIFETIME)
    assert settings.peering.priority == peering.priority == priority_of(STARTED, "kubeopt-abc")
    assert peering.identity == "kubeopt-abc"


def test_without_a_pod_name_the_fallback_identity_is_used() -> None:
    assert peering_from_env({"KUBEOPT_PEERING": "kubeopt"}, STARTED, "host/1").identity == "host/1"


def test_an_older_replica_has_the_higher_priority_even_a_millisecond_apart() -> None:
    names = [f"kubeopt-{i}" for i in range(50)]

    assert all(priority_of(STARTED, a) > priority_of(STARTED + 1, b) for a in names for b in names)


def test_replicas_started_in_the_same_millisecond_still_differ_in_priority() -> None:
    # kopf pauses every operator when two live ones have equal priorities.
    assert priority_of(STARTED, "kubeopt-7d9f-abcde") != priority_of(STARTED, "kubeopt-7d9f-fghij")


@pytest.mark.parametrize("lifetime", ["soon", "1", "0", "-5"])
def test_a_lifetime_that_is_no_whole_number_of_seconds_or_too_short_is_refused_by_name(lifetime: str) -> None:
    with pytest.raises(ValueError, match="KUBEOPT_PEERING_LIFETIME"):
        peering_from_env({"KUBEOPT_PEERING": "kubeopt", "KUBEOPT_PEERING_LIFETIME": lifetime}, STARTED, "h")


def test_the_lifetime_comes_from_the_environment() -> None:
    env = {"KUBEOPT_PEERING": "kubeopt", "KUBEOPT_PEERING_LIFETIME": "30"}

    assert peering_from_env(env, STARTED, "h") == Peering("kubeopt", "h", priority_of(STARTED, "h"), 30)
