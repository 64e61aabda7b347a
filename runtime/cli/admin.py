"""Admin commands: tenants (budget, suspend, skills, promotion settings), policy rules,
stop requests."""

import argparse
import json
from typing import Any

from domain.enums import PolicyOutcome, RuleKind, TenantStatus
from domain.promotion import FROZEN_POLICY_IDS
from runtime.cli.context import CliError, Context, add_json_flag, output, tenant_hint
from services import control, rules, tenants
from services.errors import AdminError


def register(sub: argparse._SubParsersAction) -> None:
    tenant = sub.add_parser("tenant", help="manage tenants").add_subparsers(
        dest="tenant_command", required=True
    )
    p = tenant.add_parser("add", help="create a tenant")
    p.add_argument("tenant_id")
    p.add_argument("--budget", help="budget limit per run (default: none)")
    p.add_argument("--skills", help="comma-separated allowed skills (default: all)")
    p.set_defaults(handler=tenant_add)
    p = tenant.add_parser("list", help="list tenants")
    add_json_flag(p)
    p.set_defaults(handler=tenant_list)
    p = tenant.add_parser("set-budget", help="change a tenant's budget limit")
    p.add_argument("tenant_id")
    p.add_argument("budget", help="a number, or 'none'")
    p.set_defaults(handler=tenant_budget)
    for name, status in (("suspend", TenantStatus.SUSPENDED), ("activate", TenantStatus.ACTIVE)):
        p = tenant.add_parser(name, help=f"{name} a tenant")
        p.add_argument("tenant_id")
        p.set_defaults(handler=tenant_status, status=status)
    p = tenant.add_parser("allow-skills", help="set a tenant's allowed skills")
    p.add_argument("tenant_id")
    p.add_argument("skills", help="comma-separated skill names")
    p.set_defaults(handler=tenant_skills)
    p = tenant.add_parser(
        "set-promotion", help="which promotion policies a tenant's candidates may name, "
        "and the bound on their signal_count",
    )  # fmt: skip
    p.add_argument("tenant_id")
    p.add_argument(
        "--policies",
        help=f"comma-separated policy ids ({', '.join(FROZEN_POLICY_IDS)}), 'all' (every "
        "frozen policy, the default) or 'none'",
    )
    p.add_argument(
        "--max-signal-count",
        help="the highest signal_count accepted, or 'default' (MAX_SIGNAL_COUNT)",
    )
    add_json_flag(p)
    p.set_defaults(handler=tenant_promotion)

    p = tenant.add_parser(
        "set-limits", help="how many runs and steps a tenant may have in flight at once"
    )
    p.add_argument("tenant_id")
    p.add_argument("--runs-in-flight", help="a whole number, or 'default'")
    p.add_argument("--steps-in-flight", help="a whole number, or 'default'")
    add_json_flag(p)
    p.set_defaults(handler=tenant_limits)

    policy = sub.add_parser("policy", help="manage policy rules").add_subparsers(
        dest="policy_command", required=True
    )
    p = policy.add_parser("add", help="add a rule")
    p.add_argument("tenant_id")
    p.add_argument("name")
    p.add_argument("--kind", required=True, choices=[k.value for k in RuleKind])
    p.add_argument("--params", required=True, help='JSON, e.g. {"max": 5}')
    p.add_argument("--outcome", required=True, choices=[o.value for o in PolicyOutcome])
    p.set_defaults(handler=policy_add)
    p = policy.add_parser("list", help="list rules")
    p.add_argument("--tenant")
    add_json_flag(p)
    p.set_defaults(handler=policy_list)
    for name, enabled in (("enable", True), ("disable", False)):
        p = policy.add_parser(name, help=f"{name} a rule")
        p.add_argument("tenant_id")
        p.add_argument("name")
        p.set_defaults(handler=policy_update, enabled=enabled, params=None, outcome=None)
    p = policy.add_parser("set", help="change a rule's params or outcome")
    p.add_argument("tenant_id")
    p.add_argument("name")
    p.add_argument("--params")
    p.add_argument("--outcome", choices=[o.value for o in PolicyOutcome])
    p.set_defaults(handler=policy_update, enabled=None)

    p = sub.add_parser("request-stop", help="ask a run to stop at its next policy check")
    p.add_argument("run_id")
    p.add_argument("--reason", default="stop requested by operator")
    p.set_defaults(handler=request_stop)


def _skills(text: str | None) -> list[str] | None:
    return None if text is None else [s.strip() for s in text.split(",") if s.strip()]


def _policies(text: str | None) -> list[str] | None | tenants.Keep:
    if text is None:
        return tenants.KEEP
    named = {"all": None, "none": []}  # every frozen policy / not one
    if text.strip().lower() in named:
        return named[text.strip().lower()]
    policies = _skills(text)
    if not policies:
        raise CliError("--policies: give policy ids, 'all' or 'none'")
    return policies


def _signal_bound(text: str | None) -> int | None | tenants.Keep:
    if text is None:
        return tenants.KEEP
    if text.strip().lower() == "default":
        return None
    try:
        return int(text)
    except ValueError:
        raise CliError(f"--max-signal-count: {text!r} is not a whole number or 'default'") from None


def _limit(text: str | None, flag: str) -> int | None | tenants.Keep:
    if text is None:
        return tenants.KEEP
    if text.strip().lower() == "default":
        return None
    try:
        return int(text)
    except ValueError:
        raise CliError(f"{flag}: {text!r} is not a whole number or 'default'") from None


def _json(text: str | None, name: str) -> dict | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(f"{name}: not JSON ({exc.msg})") from None
    if not isinstance(value, dict):
        raise CliError(f"{name}: expected a JSON object")
    return value


def _guard(fn, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
    try:
        return fn(*args, **kwargs)
    except AdminError as exc:
        raise CliError(tenant_hint(str(exc))) from None


async def tenant_add(ctx: Context, args: argparse.Namespace) -> None:
    _guard(tenants.add_tenant, ctx.sessions, args.tenant_id, budget=args.budget,
           skills=_skills(args.skills))  # fmt: skip
    print(f"tenant {args.tenant_id} created")


async def tenant_list(ctx: Context, args: argparse.Namespace) -> None:
    output(args, tenants.list_tenants(ctx.existing_sessions), lambda ts: "\n".join(
        f"{t['id']}: {t['status']} budget={t['budget_limit']} skills={t['allowed_skills'] or 'all'}"
        f"{_promotion_brief(t)}" for t in ts) or "no tenants")  # fmt: skip


def _promotion_brief(t: dict[str, Any]) -> str:
    """The tenant's own promotion settings, when it has any."""
    policies, bound = t["promotion_policies"], t["max_signal_count"]
    brief = "" if policies is None else f" promotion_policies={','.join(policies) or 'none'}"
    return brief + ("" if bound is None else f" max_signal_count={bound}")


async def tenant_budget(ctx: Context, args: argparse.Namespace) -> None:
    clear = args.budget.lower() == "none"
    state = _guard(tenants.update_tenant, ctx.sessions, args.tenant_id,
                   budget=None if clear else args.budget, clear_budget=clear)  # fmt: skip
    print(f"tenant {args.tenant_id}: budget limit {state['budget_limit']}")


async def tenant_status(ctx: Context, args: argparse.Namespace) -> None:
    _guard(tenants.update_tenant, ctx.sessions, args.tenant_id, status=args.status)
    print(f"tenant {args.tenant_id}: {args.status}")


async def tenant_skills(ctx: Context, args: argparse.Namespace) -> None:
    _guard(tenants.update_tenant, ctx.sessions, args.tenant_id, skills=_skills(args.skills))
    print(f"tenant {args.tenant_id}: skills {args.skills}")


async def tenant_promotion(ctx: Context, args: argparse.Namespace) -> None:
    state = _guard(tenants.set_promotion_settings, ctx.sessions, args.tenant_id,
                   policies=_policies(args.policies),
                   max_signal_count=_signal_bound(args.max_signal_count))  # fmt: skip
    default = ctx.settings.max_signal_count
    output(args, state, lambda st: _promotion_text(args.tenant_id, st, default))


async def tenant_limits(ctx: Context, args: argparse.Namespace) -> None:
    state = _guard(tenants.set_flight_limits, ctx.sessions, args.tenant_id,
                   runs=_limit(args.runs_in_flight, "--runs-in-flight"),
                   steps=_limit(args.steps_in_flight, "--steps-in-flight"))  # fmt: skip
    defaults = {
        "max_runs_in_flight": ctx.settings.max_runs_in_flight_per_tenant,
        "max_steps_in_flight": ctx.settings.max_steps_in_flight_per_tenant,
    }

    def text(st: dict[str, Any]) -> str:
        shown = [
            f"{key.removeprefix('max_').replace('_', ' ')} "
            + (f"{defaults[key]} (the default)" if value is None else str(value))
            for key, value in st.items()
        ]
        return f"tenant {args.tenant_id}: " + "; ".join(shown)

    output(args, state, text)


def _promotion_text(tenant_id: str, state: dict[str, Any], default_bound: int) -> str:
    policies = state["promotion_policies"]
    if policies is None:
        named = f"every frozen policy ({', '.join(FROZEN_POLICY_IDS)})"
    else:
        named = ", ".join(policies) or "none"
    bound = state["max_signal_count"]
    limit = f"{default_bound} (the default)" if bound is None else str(bound)
    return f"tenant {tenant_id}: promotion policies {named}; max signal count {limit}"


async def policy_add(ctx: Context, args: argparse.Namespace) -> None:
    _guard(rules.add_rule, ctx.sessions, args.tenant_id, args.name, args.kind,
           _json(args.params, "--params"), args.outcome)  # fmt: skip
    print(f"rule {args.name} added for tenant {args.tenant_id}")


async def policy_list(ctx: Context, args: argparse.Namespace) -> None:
    output(args, rules.list_rules(ctx.existing_sessions, args.tenant), lambda rs: "\n".join(
        f"{r['tenant_id']}/{r['name']}: {r['kind']} {json.dumps(r['params'])} -> {r['outcome']}"
        f" {'enabled' if r['enabled'] else 'disabled'} v{r['version']}" for r in rs)
        or "no rules")  # fmt: skip


async def policy_update(ctx: Context, args: argparse.Namespace) -> None:
    state = _guard(rules.update_rule, ctx.sessions, args.tenant_id, args.name,
                   enabled=args.enabled, params=_json(args.params, "--params"),
                   outcome=args.outcome)  # fmt: skip
    print(f"rule {args.name}: {'enabled' if state['enabled'] else 'disabled'} v{state['version']}")


async def request_stop(ctx: Context, args: argparse.Namespace) -> None:
    _guard(control.request_stop, ctx.sessions, args.run_id, args.reason)
    print(f"stop requested for run {args.run_id}")
