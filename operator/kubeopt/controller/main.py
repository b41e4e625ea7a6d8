"""``kubeopt operator``: settings, metrics, the kubernetes client, then kopf until stopped."""

from __future__ import annotations

import asyncio
import faulthandler
import logging
import os
import signal
import socket
import threading
import time
from typing import Any

import kopf
from kubernetes import client, config
from prometheus_client import CollectorRegistry

from kubeopt.controller.cluster import KubeCluster
from kubeopt.controller.handlers import RECONCILE_WORKERS, register
from kubeopt.controller.liveness import Heartbeat, keep_beating
from kubeopt.controller.metrics import Metrics
from kubeopt.controller.peering import Peering, peering_from_env
from kubeopt.controller.reconcile import Reconciler
from kubeopt.controller.serving import serve
from kubeopt.controller.settings import OperatorSettings, SettingsError, settings_from_process

log = logging.getLogger(__name__)
ANNOTATION_PREFIX = "kubeopt.io"
# kopf's finalizer name: older operators (a retry daemon per resource) put it on resources; with
# no daemon and no deletion handler, kopf removes it on each resource's next event.
FINALIZER = "kubeopt.io/finalizer"
# No limit on kopf's per-object workers (settings.queueing.worker_limit): every handler waits until
# every watched object is indexed, and objects beyond the limit are not even read until a worker
# exits, so a restart with more Jobs or pods than the limit (40 was tried) waited for ever. An idle
# worker exits after WORKER_IDLE seconds (kopf's default is 5), which keeps the number of
# concurrent workers, and with them kopf's TLS connections, down in a burst.
WORKER_IDLE = 0.5
# Threads running handlers (Python's default for two cores is 6): one per reconcile worker
# (handlers.py); a reconcile mostly waits on the API server, so more of them keep more Job
# creations in flight.
HANDLER_THREADS = RECONCILE_WORKERS


class NoDiffBase(kopf.AnnotationsDiffBaseStorage):
    """kopf builds a diff-base (a deep copy of the body, less kopf's annotations) on every event of
    every watched object, for change handlers to compare against; the operator has none (every
    handler is an event handler, handlers.py), so nothing is built or read. It was 5% of the
    operator's CPU in a burst of 1,000 resources (their Jobs' and pods' events)."""

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> kopf.BodyEssence:
        return kopf.BodyEssence()

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None


def api_client() -> client.ApiClient:
    """In a pod: its service account; elsewhere: $KUBECONFIG (or ~/.kube/config)."""
    configuration = client.Configuration()
    if os.environ.get("KUBERNETES_SERVICE_HOST") and not os.environ.get("KUBECONFIG"):
        config.load_incluster_config(client_configuration=configuration)
    else:
        config.load_kube_config(client_configuration=configuration)
    # One connection per handler thread: with urllib3's default of 10, every write beyond the tenth
    # in flight opened a TLS connection and threw it away ("Connection pool is full").
    configuration.connection_pool_maxsize = HANDLER_THREADS
    return client.ApiClient(configuration)


def configure(settings: kopf.OperatorSettings, peering: Peering | None = None) -> None:
    """kopf settings: state in our annotations (the status schema has no room for kopf's), our own
    finalizer name, no Events from kopf's log lines; no peering objects unless ``peering`` names
    one (replicas, see peering.py): then one ClusterKopfPeering, whatever namespaces are watched,
    so every replica sees every other.

    Transitions post their own Events (``kopf.event``); kopf's own log lines stay in the log (as
    Events, a throttled API server would get one more write per resource per retry)."""
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=ANNOTATION_PREFIX)
    settings.persistence.diffbase_storage = NoDiffBase(prefix=ANNOTATION_PREFIX, key="last-handled-configuration")
    settings.persistence.finalizer = FINALIZER
    settings.posting.level = logging.CRITICAL
    peering = peering or Peering()
    settings.peering.standalone = not peering.enabled
    if peering.enabled:
        settings.peering.mandatory = True
        settings.peering.clusterwide = True
        settings.peering.name = str(peering.name)
        settings.peering.priority = peering.priority
        settings.peering.lifetime = peering.lifetime
        settings.peering.stealth = True
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.queueing.error_delays = (1, 2, 5, 10)
    settings.queueing.worker_limit = None  # see above: a limit deadlocks a restart with many objects
    settings.queueing.idle_timeout = WORKER_IDLE
    settings.execution.max_workers = HANDLER_THREADS


def build_registry(settings: OperatorSettings, metrics: Metrics, peering: Peering,
                   heartbeat: Heartbeat | None = None) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()
    cluster = KubeCluster(api_client(), create_accounts=settings.worker_pod.create_service_account,
                          account_annotations=settings.worker_pod.service_account_annotations)
    reconciler = Reconciler(settings, metrics, cluster)
    register(registry, reconciler)
    beating: set[asyncio.Task[None]] = set()  # a reference, so the task is not collected

    @kopf.on.startup(id="configure", registry=registry)
    def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
        configure(settings, peering)

    if heartbeat is not None:
        @kopf.on.startup(id="heartbeat", registry=registry)
        async def start_heartbeat(settings: kopf.OperatorSettings, **_: Any) -> None:
            beating.add(asyncio.create_task(keep_beating(heartbeat, lambda: settings.execution.executor)))

        @kopf.on.cleanup(id="heartbeat", registry=registry)
        async def stop_heartbeat(**_: Any) -> None:
            for task in beating:
                task.cancel()

    return registry


def run_operator(namespaces: list[str] | None, metrics_port: int) -> int:
    """Run until SIGTERM/SIGINT; returns the process exit code (2: a setting the chart wrote is malformed)."""
    try:
        settings = settings_from_process(namespaces, metrics_port)
    except SettingsError as error:
        log.critical("%s", error)
        return 2
    # `kill -USR1` prints every thread's stack to the log: how to see where a stuck operator waits.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    # kopf logs every successful handler call; Jobs and pods change often. Failures still show.
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    # Read once here, like the settings: the start time ranks this replica (older wins).
    peering = peering_from_env(os.environ, time.time_ns() // 1_000_000, f"{socket.gethostname()}/{os.getpid()}")
    return run_with(settings, peering=peering)


def run_with(settings: OperatorSettings, stop: threading.Event | None = None,
             peering: Peering | None = None) -> int:
    """Run kopf until ``stop`` (or a signal); ``peering`` None: standalone."""
    peering = peering or Peering()
    metrics_registry = CollectorRegistry()
    metrics = Metrics(metrics_registry)
    ready = threading.Event()
    heartbeat = Heartbeat(settings.liveness_timeout)
    server = serve(settings.metrics_port, metrics_registry, ready, health=heartbeat.problem)
    log.info("metrics, /healthz and /readyz on :%d (unhealthy after %.0f s without reconciling progress); "
             "watching %s", settings.metrics_port, settings.liveness_timeout,
             ", ".join(settings.namespaces) or "all namespaces")
    if peering.enabled:
        log.info("peering in ClusterKopfPeering %s as %s, priority %d, lifetime %d s: acting only while no "
                 "older replica is alive", peering.name, peering.identity, peering.priority, peering.lifetime)
    try:
        kopf.run(registry=build_registry(settings, metrics, peering, heartbeat), standalone=not peering.enabled,
                 identity=peering.identity,  # type: ignore[arg-type]  # kopf's NewType of str
                 priority=peering.priority, peering_name=peering.name,
                 clusterwide=not settings.namespaces, namespaces=settings.namespaces,
                 ready_flag=ready, stop_flag=stop)
    finally:
        server.shutdown()
    return 0
