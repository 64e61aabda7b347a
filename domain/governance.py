"""The tenant decides, a run may only tighten: how a run's governance settings are resolved.

A run's settings start from the worker's defaults, overlaid with its tenant's own values
(``TenantGovernance``); a run's ``options`` may then make any of them stricter, never
looser — unless the tenant lets the submitting authority loosen that option. A loosening
that is not allowed raises ``LooseningRefused`` naming the option, and the run is refused
before anything is written. Pure: the worker (services.run_opening) and the HTTP API (before
it starts anything) resolve with the same function.
"""

from typing import Any

from pydantic import Field, field_validator

from domain.enums import Authority, ObservabilityMode, PauseTimeoutBehavior
from domain.models import RunConfig, RunOptions

OPTIONS: tuple[str, ...] = tuple(RunOptions.model_fields)

# Higher is stricter.
_OBSERVABILITY = {
    ObservabilityMode.PERMISSIVE: 0,
    ObservabilityMode.DEGRADED: 1,
    ObservabilityMode.STRICT: 2,
}
_TIMEOUT_BEHAVIOR = {
    PauseTimeoutBehavior.CONTINUE: 0,  # the run goes on by itself: the loosest
    PauseTimeoutBehavior.ESCALATE: 1,  # waits for a person, with an incident
    PauseTimeoutBehavior.TERMINATE: 2,
}


class TenantGovernance(RunOptions):
    """A tenant's governance settings (unset: the worker's default) and, per run option,
    the authorities whose runs may loosen it (none by default)."""

    loosen: dict[str, list[Authority]] = Field(default_factory=dict)

    @field_validator("loosen")
    @classmethod
    def _known_options(cls, value: dict[str, list[Authority]]) -> dict[str, list[Authority]]:
        unknown = sorted(set(value) - set(OPTIONS))
        if unknown:
            raise ValueError(f"unknown option {unknown[0]!r} (options: {', '.join(OPTIONS)})")
        return {name: sorted(set(authorities)) for name, authorities in value.items()}

    def values(self) -> dict[str, Any]:
        """The settings the tenant set (without ``loosen``)."""
        return {k: v for k, v in self.model_dump(exclude={"loosen"}).items() if v is not None}


class LooseningRefused(ValueError):
    """A run option that loosens its tenant's setting, and the tenant does not allow it."""

    def __init__(self, option: str, value: Any, setting: Any, authority: Authority | None):
        who = f"runs submitted as {authority}" if authority else "runs without a submitter"
        super().__init__(
            f"option {option}={_plain(value)} loosens the tenant's setting "
            f"{option}={_plain(setting)}; the tenant does not allow {who} to loosen it"
        )
        self.option = option


def _plain(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def is_stricter_or_equal(option: str, value: Any, setting: Any, behavior: Any) -> bool:
    """Whether ``value`` for ``option`` is at least as strict as ``setting``. ``behavior``:
    the run's resolved pause-timeout behaviour (a shorter pause SLA is stricter, except
    when the pause then continues by itself)."""
    if option == "observability_mode":
        return _OBSERVABILITY[value] >= _OBSERVABILITY[setting]
    if option == "pause_timeout_behavior":
        return _TIMEOUT_BEHAVIOR[value] >= _TIMEOUT_BEHAVIOR[setting]
    if option == "policy_check_enabled":
        return bool(value) or not setting
    if option == "pause_sla_seconds" and behavior == PauseTimeoutBehavior.CONTINUE:
        return value >= setting
    if option == "pause_notify_before_seconds":
        return value >= setting  # warned earlier
    if option == "budget_warning_percent":
        return setting is None or value <= setting  # warned at all, or sooner
    # policy_check_interval_seconds, policy_check_min_steps, pause_sla_seconds,
    # run_timeout_seconds: smaller is stricter
    return value <= setting


def resolve_config(
    defaults: RunConfig,
    tenant: TenantGovernance | None,
    options: RunOptions,
    submitter: Authority | None = None,
) -> RunConfig:
    """The run's settings: ``defaults`` (the worker's), the tenant's values over them, then
    the run's options where they tighten (or where the tenant lets ``submitter`` loosen);
    raises LooseningRefused for the first option that loosens without leave."""
    tenant = tenant or TenantGovernance()
    base = defaults.model_copy(update=tenant.values())
    asked = options.model_dump(exclude_none=True)
    behavior = asked.get("pause_timeout_behavior", base.pause_timeout_behavior)
    for option in OPTIONS:  # a fixed order: the same option is named every time
        if option not in asked:
            continue
        value, setting = asked[option], getattr(base, option)
        if is_stricter_or_equal(option, value, setting, behavior):
            continue
        if submitter is None or submitter not in tenant.loosen.get(option, []):
            raise LooseningRefused(option, value, setting, submitter)
    return base.model_copy(update=asked)
