"""Alert fatigue controls: dedup window, domain cooldowns, hourly cap, per-tenant settings."""

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.alert_fatigue import (
    AlertType,
    Candidate,
    FatigueSettings,
    SentAlert,
    SuppressionReason,
    TenantOverrides,
    check_alert,
    effective_settings,
)

pytestmark = pytest.mark.timeout(60)

NOW = datetime(2025, 1, 1, 12, tzinfo=UTC)
STALE = Candidate(AlertType.STALE_RUN, "orchestrator", "STALE_RUN:r1:orchestrator")


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


def test_first_alert_is_sent():
    decision = check_alert(STALE, FatigueSettings(), [], NOW)
    assert decision.send and decision.reason is None


def test_same_key_within_the_window_is_a_duplicate():
    sent = [SentAlert(STALE.dedup_key, "orchestrator", ago(30))]
    decision = check_alert(STALE, FatigueSettings(dedup_window_seconds=60), sent, NOW)
    assert (decision.send, decision.reason) == (False, SuppressionReason.DUPLICATE)
    assert STALE.dedup_key in decision.detail


def test_same_key_after_the_window_is_sent_again():
    sent = [SentAlert(STALE.dedup_key, "orchestrator", ago(61))]
    assert check_alert(STALE, FatigueSettings(dedup_window_seconds=60), sent, NOW).send


def test_domain_cooldown_holds_back_another_alert_of_that_domain():
    settings = FatigueSettings(domain_cooldowns={"orchestrator": 300})
    sent = [SentAlert("STALE_RUN:r0:orchestrator", "orchestrator", ago(120))]
    decision = check_alert(STALE, settings, sent, NOW)
    assert (decision.send, decision.reason) == (False, SuppressionReason.DOMAIN_COOLDOWN)
    other_domain = Candidate(AlertType.DRIFT, "incidents", "DRIFT:r1:incidents")
    assert check_alert(other_domain, settings, sent, NOW).send
    assert check_alert(STALE, settings, [SentAlert("x", "orchestrator", ago(301))], NOW).send


def test_tenant_hourly_cap():
    settings = FatigueSettings(max_alerts_per_hour=3)
    sent = [SentAlert(f"k{i}", "traces", ago(60 * i + 1)) for i in range(3)]
    decision = check_alert(STALE, settings, sent, NOW)
    assert (decision.send, decision.reason) == (False, SuppressionReason.TENANT_RATE_LIMIT)
    older = [SentAlert(f"k{i}", "traces", ago(3600 + i)) for i in range(3)]
    assert check_alert(STALE, settings, older, NOW).send


def test_disabled_tenant_gets_nothing():
    settings = effective_settings(FatigueSettings(), TenantOverrides(alerts_enabled=False))
    decision = check_alert(STALE, settings, [], NOW)
    assert (decision.send, decision.reason) == (False, SuppressionReason.DISABLED)


def test_fatigue_off_sends_duplicates():
    sent = [SentAlert(STALE.dedup_key, "orchestrator", ago(1))]
    assert check_alert(STALE, FatigueSettings(fatigue_enabled=False), sent, NOW).send


def test_reasons_apply_in_order():
    settings = FatigueSettings(max_alerts_per_hour=1, domain_cooldowns={"orchestrator": 600})
    sent = [SentAlert(STALE.dedup_key, "orchestrator", ago(10))]
    assert check_alert(STALE, settings, sent, NOW).reason == SuppressionReason.DUPLICATE


def test_tenant_settings_overlay_the_defaults():
    defaults = FatigueSettings(
        max_alerts_per_hour=100, dedup_window_seconds=60, domain_cooldowns={"traces": 10}
    )
    own = TenantOverrides(max_alerts_per_hour=5, domain_cooldowns={"incidents": 300})
    merged = effective_settings(defaults, own)
    assert merged.max_alerts_per_hour == 5
    assert merged.dedup_window_seconds == 60
    assert dict(merged.domain_cooldowns) == {"traces": 10, "incidents": 300}
    assert effective_settings(defaults, None) is defaults
    assert merged.horizon() == timedelta(hours=1)
    assert FatigueSettings(dedup_window_seconds=7200).horizon() == timedelta(hours=2)


keys = st.sampled_from(["a", "b", "c", "d"])
domains = st.sampled_from(["traces", "incidents", "orchestrator"])


@given(
    st.lists(st.tuples(keys, domains, st.integers(0, 30)), max_size=300),
    st.integers(0, 20),
    st.integers(0, 120),
)
def test_simulated_stream_never_exceeds_the_cap_nor_repeats_within_the_window(stream, cap, window):
    settings = FatigueSettings(max_alerts_per_hour=cap, dedup_window_seconds=window)
    now = NOW
    sent: list[SentAlert] = []
    for key, domain, gap in stream:
        now += timedelta(seconds=gap)
        decision = check_alert(Candidate(AlertType.DRIFT, domain, key), settings, sent, now)
        if decision.send:
            sent.append(SentAlert(key, domain, now))
        else:
            assert decision.reason is not None and decision.detail
    for alert in sent:
        in_hour = [s for s in sent if alert.at - timedelta(hours=1) < s.at <= alert.at]
        assert len(in_hour) <= cap
        same = [s for s in sent if s.dedup_key == alert.dedup_key and s.at < alert.at]
        assert all(alert.at - s.at >= timedelta(seconds=window) for s in same)
