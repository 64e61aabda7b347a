"""The Prometheus /metrics endpoint on both databases: started as the worker starts it (a
real HTTP server on 127.0.0.1), fed by real activity — a run on the dev server, alerts
through the fatigue controls, the alert-sinks reactor delivering to a real webhook — then
fetched with httpx and read with prometheus_client's own text parser.

Counters keyed by a fresh tenant (or reactor group) are compared as they are; the ones
keyed by topic, handler or sink kind (shared with the other tests of the process) by how
much they grew between two scrapes."""

import time
import uuid
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from cryptography.fernet import Fernet
from prometheus_client.parser import text_string_to_metric_families

from activities.secret_store import SecretBox
from activities.skills.egress import EgressRefused
from domain.alert_fatigue import AlertType, FatigueSettings
from domain.egress import EgressRule
from domain.enums import Severity
from events.notifications import ROUTE, SEND, sink_handlers
from events.reactor import Reactor, ReactorConfig
from events.senders import Sender, tenant_outbound
from observability.prometheus import MetricsServer
from runtime.worker_factory import egress
from services import sinks
from services.alerts import AlertSpec, raise_alert
from services.ledger import utcnow
from tests.helpers import echo_steps, new_tenant, running_worker, start_run
from tests.security_servers import allow_egress
from tests.sink_servers import receiver
from tests.telemetry_support import process_telemetry
from worker import metrics_endpoint

pytestmark = pytest.mark.timeout(90)

SECRET = "whsec-0123456789abcdef"
Key = tuple[str, frozenset[tuple[str, str]]]


@pytest.fixture
def metrics_server(settings) -> Iterator[MetricsServer]:
    """The worker's /metrics endpoint on a free port of 127.0.0.1."""
    free = settings.model_copy(update={"metrics_port": 0, "metrics_host": "127.0.0.1"})
    with metrics_endpoint(free, process_telemetry().telemetry) as server:
        assert server is not None
        yield server


def scrape(server: MetricsServer) -> tuple[set[str], dict[Key, float]]:
    """The metric families and every sample (name, labels) → value of one GET /metrics."""
    response = httpx.get(server.url, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    families = list(text_string_to_metric_families(response.text))
    samples = {(s.name, frozenset(s.labels.items())): s.value for f in families for s in f.samples}
    return {f.name for f in families}, samples


def value(samples: dict[Key, float], name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels`` (0 if none)."""
    want = set(labels.items())
    return sum(v for (n, got), v in samples.items() if n == name and want <= got)


def grew(before: dict[Key, float], after: dict[Key, float], name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


async def test_a_run_s_policy_checks_and_outcome_are_scraped(
    dev_env, settings, sessions, task_queue, metrics_server
):
    tenant = new_tenant(sessions)
    async with running_worker(dev_env.client, settings, sessions, task_queue):
        run_id = f"r-{uuid.uuid4().hex[:12]}"
        handle = await start_run(
            dev_env.client, task_queue, run_id, {"tenant_id": tenant, "steps": echo_steps(3)}
        )
        assert (await handle.result()).status == "succeeded"
    families, samples = scrape(metrics_server)
    assert {
        "governed_runs_policy_decisions",
        "governed_runs_policy_check_duration_seconds",
        "governed_runs_runs_finished",
        "governed_runs_run_phase_duration_seconds",
    } <= families
    # the check before step 0 (runs.open) and control.check_policy before steps 1 and 2
    decisions = {
        dict(labels)["decision"]: v
        for (name, labels), v in samples.items()
        if name == "governed_runs_policy_decisions_total" and ("tenant_id", tenant) in labels
    }
    assert decisions == {"CONTINUE": 3}
    checks = "governed_runs_policy_check_duration_seconds"
    mine = {"tenant_id": tenant, "decision": "CONTINUE"}
    assert value(samples, f"{checks}_count", **mine) == 2
    assert value(samples, f"{checks}_bucket", **mine, le="+Inf") == 2
    assert value(samples, f"{checks}_sum", **mine) > 0
    finished = {"tenant_id": tenant, "phase": "COMPLETED", "status": "succeeded"}
    assert value(samples, "governed_runs_runs_finished_total", **finished) == 1
    # no run id anywhere: the labels are bounded
    assert not [key for key in samples if run_id in str(key)]


def sink_reactor(settings, sessions, box: SecretBox) -> Reactor:  # noqa: ANN001
    """The alert-sinks handlers on a reactor of its own group, with short retries."""
    sender = Sender(box, tenant_outbound(egress(settings), sessions), 5.0)
    # no overlap: its cursor starts now, so other tests' recent alerts are not its events
    config = ReactorConfig(group=f"test-metrics-{uuid.uuid4().hex[:8]}", retry_base=0.05,
                           retry_max=0.2, sweep_overlap=0, sweep_interval=3600)  # fmt: skip
    return Reactor(sessions, sink_handlers(sessions, sender, FatigueSettings(), 5), config)


def raise_stale_run(sessions, tenant_id: str, dedup_key: str) -> None:  # noqa: ANN001
    spec = AlertSpec(tenant_id=tenant_id, alert_type=AlertType.STALE_RUN,
                     severity=Severity.HIGH, domain="orchestrator", run_id=None,
                     dedup_key=dedup_key, title="a run never finalized", details={},
                     source_event_id=str(uuid.uuid4()))  # fmt: skip
    with sessions.begin() as session:
        raise_alert(session, FatigueSettings(), spec, utcnow())


def test_alerts_their_events_and_deliveries_are_scraped(settings, sessions, tmp_path,
                                                        metrics_server):  # fmt: skip
    tenant = new_tenant(sessions)
    box = SecretBox(Fernet.generate_key().decode(), tmp_path / "unused.key")
    reactor = sink_reactor(settings, sessions, box)
    assert not reactor.poll_once()  # its cursor is set: only the events from here on
    _, before = scrape(metrics_server)
    with receiver(SECRET) as rx:
        allow_egress(sessions, tenant, rx.url)
        hook = {"kind": "webhook", "name": "hook", "url": f"{rx.url}/hook", "secret": SECRET}
        sinks.save_sink(sessions, box, tenant, hook)
        rx.answer("/hook", 500)  # the first attempt fails, the retry delivers
        raise_stale_run(sessions, tenant, "stale:1")
        raise_stale_run(sessions, tenant, "stale:1")  # within the dedup window: DUPLICATE
        deadline = time.monotonic() + 30
        while reactor.poll_once() or len(rx.at("/hook")) < 2:  # then until nothing is left
            assert time.monotonic() < deadline, "the alert was not delivered in time"
            time.sleep(0.02)  # the retry is due within retry_max (0.2 s)
    families, after = scrape(metrics_server)
    assert {"governed_runs_alerts_sent", "governed_runs_alerts_suppressed",
            "governed_runs_notifications_deliveries", "governed_runs_events_received",
            "governed_runs_events_delivered", "governed_runs_events_failed",
            "governed_runs_events_handler_duration_seconds",
            "governed_runs_reactor_heartbeats"} <= families  # fmt: skip
    assert value(after, "governed_runs_alerts_sent_total", tenant_id=tenant,
                 kind="STALE_RUN") == 1  # fmt: skip
    assert value(after, "governed_runs_alerts_suppressed_total", tenant_id=tenant,
                 kind="STALE_RUN", reason="DUPLICATE") == 1  # fmt: skip
    notifications = "governed_runs_notifications_deliveries_total"
    assert grew(before, after, notifications, sink_kind="webhook", outcome="FAILED") == 1
    assert grew(before, after, notifications, sink_kind="webhook", outcome="DELIVERED") == 1
    route = {"topic": "alert.raised", "handler": ROUTE}
    send = {"topic": "alert.sink_delivery", "handler": SEND}
    assert grew(before, after, "governed_runs_events_received_total", **route) == 1
    assert grew(before, after, "governed_runs_events_delivered_total", **route) == 1
    assert grew(before, after, "governed_runs_events_received_total", **send) == 1
    assert grew(before, after, "governed_runs_events_failed_total", **send) == 1
    assert grew(before, after, "governed_runs_events_delivered_total", **send) == 1
    duration = "governed_runs_events_handler_duration_seconds"
    assert grew(before, after, f"{duration}_count", **send) == 2
    assert grew(before, after, f"{duration}_count", **route) == 1
    beats = value(after, "governed_runs_reactor_heartbeats_total", group=reactor.config.group)
    assert beats == 1  # the first poll beat; the next is due 30 s later
    assert value(after, "governed_runs_reactor_heartbeat_misses_total",
                 group=reactor.config.group) == 0  # fmt: skip


def test_heartbeat_intervals_without_a_beat_are_misses(sessions, metrics_server):
    group = f"test-beats-{uuid.uuid4().hex[:8]}"
    reactor = Reactor(sessions, sink_handlers(sessions, None, FatigueSettings(), 5),
                      ReactorConfig(group=group, heartbeat_interval=1.0))  # fmt: skip
    start = utcnow()
    for seconds in (0, 1.2, 4.5):  # on time, then three intervals later: two missed
        reactor.heartbeat(start + timedelta(seconds=seconds))
    _, samples = scrape(metrics_server)
    assert value(samples, "governed_runs_reactor_heartbeats_total", group=group) == 3
    assert value(samples, "governed_runs_reactor_heartbeat_misses_total", group=group) == 2


def test_no_step_may_reach_the_metrics_port(settings, metrics_server):
    """The worker's egress protects the port it serves /metrics on, allow-listed or not."""
    served = settings.model_copy(update={"metrics_port": metrics_server.port})
    everything = egress(served).for_tenant("acme", (EgressRule.parse_text("*://*:*"),))
    with pytest.raises(EgressRefused) as refused:
        everything.request("GET", metrics_server.url, timeout=5)
    assert refused.value.reason == (
        f"127.0.0.1:{metrics_server.port} is a protected endpoint of this deployment"
    )
    assert httpx.get(metrics_server.url, timeout=5).status_code == 200  # it is listening


def test_metrics_disabled_starts_no_server(settings):
    telemetry = process_telemetry().telemetry
    off = settings.model_copy(update={"metrics_enabled": False, "metrics_port": 0})
    with metrics_endpoint(off, telemetry) as server:
        assert server is None
