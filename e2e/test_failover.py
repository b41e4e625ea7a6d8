"""Two operator replicas with kopf peering: one acts, the other waits and takes over when it dies.

Both run as their own processes with the Helm chart's RBAC token (rendered with
``peering.enabled=true``) and the chart's ClusterKopfPeering, as two pods of the Deployment
would: ``KUBEOPT_PEERING`` names the object, ``KUBEOPT_POD_NAME`` gives each its identity, and
the first one started is the older, so it has the higher priority (``controller/peering.py``).

A first burst of ten resources (two targets each, pods that ask for a GPU, which no fake kubelet
has: Jobs are created, never run) is handled while both run: the standby never resumes (kopf
starts it paused) and its metrics count no Job. A second burst starts, the active replica is SIGKILLed once a
seeded number of the burst's Jobs exist, and the standby must resume within the peering lifetime
(plus slack for the keep-alive jitter and the watch restart) and leave exactly one Job per
(resource, target), each named in its resource's status. The test prints the measured failover.
"""

from __future__ import annotations

import random
import re
import time
from pathlib import Path

import pytest
import yaml
from kubeopt_e2e.clients import Helm, Kubectl
from kubeopt_e2e.faults import JobCounter
from kubeopt_e2e.operator import (
    E2E_VALUES,
    E2E_WORKER_ENV,
    RBAC_KINDS,
    OperatorProcess,
    chart_documents,
    token_kubeconfig,
)
from test_faults import NO_NODE_FITS, TWO_TARGETS, job_gaps, owned_jobs
from test_operator import CHART, CRD, eventually, new_namespace, resource

from kubeopt.controller.metrics import JOBS_CREATED

PEERING_CRD = CRD.parent / "clusterkopfpeerings.kopf.dev.yaml"
RELEASE = "kubeopt"
SYSTEM = "kubeopt-system"
LIFETIME = 6  # seconds a keep-alive counts; the chart's default is 15
PER_BURST = 10
SEED = 7
RESUMED = "Resuming operations after the pause"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def peering_kubeconfig(kubectl: Kubectl, helm_offline: Helm, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The CRDs, the chart's RBAC and ClusterKopfPeering (peering on), and a token of its account."""
    kubectl.install_crd(CRD, "modeloptimizations.kubeopt.io")
    kubectl.install_crd(PEERING_CRD, "clusterkopfpeerings.kopf.dev")
    kubectl("create", "namespace", SYSTEM, check=False)
    values = (*E2E_VALUES, "peering.enabled=true")
    documents = chart_documents(helm_offline, CHART, RELEASE, SYSTEM, RBAC_KINDS | {"ClusterKopfPeering"}, values)
    kubectl.apply(yaml.safe_dump_all(documents))
    account = next(d["metadata"]["name"] for d in documents if d["kind"] == "ServiceAccount")
    return token_kubeconfig(kubectl, account, SYSTEM, tmp_path_factory.mktemp("peering") / "kubeconfig")


def replica(kubeconfig: Path, log: Path, name: str) -> OperatorProcess:
    return OperatorProcess(kubeconfig, log, env={
        **E2E_WORKER_ENV, "KUBEOPT_PEERING": RELEASE, "KUBEOPT_PEERING_LIFETIME": str(LIFETIME),
        "KUBEOPT_POD_NAME": name})


def jobs_created(operator: OperatorProcess) -> float:
    return sum(float(m) for m in re.findall(rf"^{JOBS_CREATED}_total{{[^}}]*}} (\S+)$", operator.metrics(), re.M))


def test_two_replicas_act_one_at_a_time_and_the_standby_takes_over_a_killed_active_one_without_duplicates(
        kubectl: Kubectl, peering_kubeconfig: Path, tmp_path: Path) -> None:
    rng = random.Random(SEED)
    namespace = new_namespace(kubectl, "e2e-failover")
    first = replica(peering_kubeconfig, tmp_path / "replica-a.log", "replica-a")
    second = replica(peering_kubeconfig, tmp_path / "replica-b.log", "replica-b")
    jobs = JobCounter(kubectl.kubeconfig, namespace).start()
    first.start()
    second.start()
    try:
        tails = lambda: first.tail() + "\n----\n" + second.tail()  # noqa: E731
        # kopf starts a replica paused (mandatory peering) and resumes it only when no live peer
        # has a higher priority: the older one resumes, the younger stays paused.
        eventually("both replicas keep their records in the peering object", lambda: {"replica-a", "replica-b"}
                   <= set(kubectl.json("get", "clusterkopfpeering", RELEASE).get("status", {})), timeout=60,
                   explain=tails)
        eventually("the older replica resumed", lambda: RESUMED in first.log.read_text(), timeout=60, explain=tails)
        burst = [resource(f"calm-{i:02d}", namespace, TWO_TARGETS, parallelism=2, resources=NO_NODE_FITS)
                 for i in range(PER_BURST)]
        kubectl.apply(yaml.safe_dump_all(burst))
        eventually("one Job per target while both run", lambda: not job_gaps(kubectl, namespace, PER_BURST),
                   timeout=120, interval=1.0,
                   explain=lambda: "\n".join(job_gaps(kubectl, namespace, PER_BURST)) + tails())
        # While both run only the older one acts: the standby created nothing and never resumed.
        assert jobs_created(second) == 0, tails()
        assert jobs_created(first) == 2 * PER_BURST, tails()
        assert RESUMED not in second.log.read_text(), tails()

        burst = [resource(f"storm-{i:02d}", namespace, TWO_TARGETS, parallelism=2, resources=NO_NODE_FITS)
                 for i in range(PER_BURST)]
        kubectl.apply(yaml.safe_dump_all(burst))
        trigger = 2 * PER_BURST + rng.randint(1, PER_BURST)
        jobs.wait_for(trigger)
        first.kill()
        killed = time.monotonic()
        after_kill = sum(len(v) for v in owned_jobs(kubectl, namespace).values())
        eventually("the standby resumed", lambda: RESUMED in second.log.read_text(), timeout=LIFETIME + 30,
                   interval=0.1, explain=second.tail)
        resumed = time.monotonic() - killed
        eventually("one Job per target after the failover",
                   lambda: not job_gaps(kubectl, namespace, 2 * PER_BURST), timeout=120, interval=0.5,
                   explain=lambda: "\n".join(job_gaps(kubectl, namespace, 2 * PER_BURST)[:20]) + second.tail())
        settled = time.monotonic() - killed
        print(f"failover (lifetime {LIFETIME} s): SIGKILL at {after_kill} of {4 * PER_BURST} Jobs, "
              f"standby resumed after {resumed:.1f} s, all Jobs and statuses after {settled:.1f} s")
        time.sleep(3)  # a late duplicate would show now
        assert job_gaps(kubectl, namespace, 2 * PER_BURST) == []
        assert sum(len(v) for v in owned_jobs(kubectl, namespace).values()) == 4 * PER_BURST
        assert after_kill < 4 * PER_BURST, "the kill came after the burst's work: nothing was taken over"
        # A dead record blocks for at most its lifetime; kopf renews 5-10 s before it runs out.
        assert resumed <= LIFETIME + 5, f"standby resumed {resumed:.1f} s after the kill"
        assert second.running(), second.tail()
    finally:
        first.stop()
        second.stop()
        jobs.stop()
        kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def test_the_chart_with_two_peered_replicas_rolls_updates_and_gives_each_pod_its_identity(helm_offline: Helm) -> None:
    rendered = helm_offline("template", RELEASE, str(CHART), "--namespace", SYSTEM, "--include-crds",
                            "--set", "replicaCount=2", "--set", "peering.enabled=true").stdout
    documents = [doc for doc in yaml.safe_load_all(rendered) if doc]

    deployment = next(d for d in documents if d["kind"] == "Deployment")
    env = {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    peerings = [d["metadata"]["name"] for d in documents if d["kind"] == "ClusterKopfPeering"]
    crds = [d["metadata"]["name"] for d in documents if d["kind"] == "CustomResourceDefinition"]
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    assert env["KUBEOPT_PEERING"]["value"] == RELEASE and peerings == [RELEASE]
    assert env["KUBEOPT_POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert "clusterkopfpeerings.kopf.dev" in crds
    assert (CHART / "crds" / PEERING_CRD.name).read_bytes() == PEERING_CRD.read_bytes()
