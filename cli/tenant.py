"""Tenant commands: add, list, budget, suspend/activate, skills, promotion settings, flight
limits, governance settings and the egress allow-list:

    python starter.py tenant egress acme                      # show it
    python starter.py tenant egress acme --allow http://127.0.0.1:18080 --allow https://api.example.com
    python starter.py tenant egress acme --allow '*://10.0.0.0/8:*'
    python starter.py tenant egress acme --clear

Each ``--allow`` is scheme://host[:port] (``*`` for any; no port: the scheme's default) or
a JSON object {"scheme", "host", "port"}; the list given replaces the tenant's list.
"""

import json
from typing import Annotated, Any

import typer

from cli.context import CliError, Context, Json, command, exclusive, output, tenant_hint
from domain.enums import TenantStatus
from domain.promotion import FROZEN_POLICY_IDS
from services import tenants
from services.errors import AdminError

app = typer.Typer(name="tenant", help="manage tenants")

TenantId = Annotated[str, typer.Argument()]
Limit = Annotated[str | None, typer.Option(help="a whole number, or 'default'")]


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


def _limit(text: str | None, flag: str) -> int | None | tenants.Keep:
    if text is None:
        return tenants.KEEP
    if text.strip().lower() == "default":
        return None
    try:
        return int(text)
    except ValueError:
        raise CliError(f"{flag}: {text!r} is not a whole number or 'default'") from None


def _guard(fn, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
    try:
        return fn(*args, **kwargs)
    except AdminError as exc:
        raise CliError(tenant_hint(str(exc))) from None


@command(app, "add", help="create a tenant")
async def add(
    ctx: Context,
    tenant_id: TenantId,
    budget: Annotated[str | None, typer.Option(help="budget limit per run (default: none)")] = None,
    skills: Annotated[
        str | None, typer.Option(help="comma-separated allowed skills (default: all)")
    ] = None,
) -> None:
    _guard(tenants.add_tenant, ctx.sessions, tenant_id, budget=budget, skills=_skills(skills))
    print(f"tenant {tenant_id} created")


@command(app, "list", help="list tenants")
async def list_(ctx: Context, as_json: Json = False) -> None:
    output(as_json, tenants.list_tenants(ctx.existing_sessions), lambda ts: "\n".join(
        f"{t['id']}: {t['status']} budget={t['budget_limit']} skills={t['allowed_skills'] or 'all'}"
        f"{_promotion_brief(t)}" for t in ts) or "no tenants")  # fmt: skip


def _promotion_brief(t: dict[str, Any]) -> str:
    """The tenant's own promotion settings, when it has any."""
    policies, bound = t["promotion_policies"], t["max_signal_count"]
    brief = "" if policies is None else f" promotion_policies={','.join(policies) or 'none'}"
    return brief + ("" if bound is None else f" max_signal_count={bound}")


@command(app, "set-budget", help="change a tenant's budget limit")
async def set_budget(
    ctx: Context,
    tenant_id: TenantId,
    budget: Annotated[str, typer.Argument(help="a number, or 'none'")],
) -> None:
    clear = budget.lower() == "none"
    state = _guard(tenants.update_tenant, ctx.sessions, tenant_id,
                  budget=None if clear else budget, clear_budget=clear)  # fmt: skip
    print(f"tenant {tenant_id}: budget limit {state['budget_limit']}")


async def _set_status(ctx: Context, tenant_id: str, status: TenantStatus) -> None:
    _guard(tenants.update_tenant, ctx.sessions, tenant_id, status=status)
    print(f"tenant {tenant_id}: {status}")


@command(app, "suspend", help="suspend a tenant")
async def suspend(ctx: Context, tenant_id: TenantId) -> None:
    await _set_status(ctx, tenant_id, TenantStatus.SUSPENDED)


@command(app, "activate", help="activate a tenant")
async def activate(ctx: Context, tenant_id: TenantId) -> None:
    await _set_status(ctx, tenant_id, TenantStatus.ACTIVE)


@command(app, "allow-skills", help="set a tenant's allowed skills")
async def allow_skills(
    ctx: Context,
    tenant_id: TenantId,
    skills: Annotated[str, typer.Argument(help="comma-separated skill names")],
) -> None:
    _guard(tenants.update_tenant, ctx.sessions, tenant_id, skills=_skills(skills))
    print(f"tenant {tenant_id}: skills {skills}")


@command(
    app,
    "set-promotion",
    help="which promotion policies a tenant's candidates may name, "
    "and the bound on their signal_count",
)
async def set_promotion(
    ctx: Context,
    tenant_id: TenantId,
    policies: Annotated[
        str | None,
        typer.Option(
            help=f"comma-separated policy ids ({', '.join(FROZEN_POLICY_IDS)}), 'all' (every "
            "frozen policy, the default) or 'none'",
        ),
    ] = None,
    max_signal_count: Annotated[
        str | None,
        typer.Option(help="the highest signal_count accepted, or 'default' (MAX_SIGNAL_COUNT)"),
    ] = None,
    as_json: Json = False,
) -> None:
    state = _guard(tenants.set_promotion_settings, ctx.sessions, tenant_id,
                  policies=_policies(policies),
                  max_signal_count=_limit(max_signal_count, "--max-signal-count"))  # fmt: skip
    default = ctx.settings.max_signal_count
    output(as_json, state, lambda st: _promotion_text(tenant_id, st, default))


def _promotion_text(tenant_id: str, state: dict[str, Any], default_bound: int) -> str:
    policies = state["promotion_policies"]
    if policies is None:
        named = f"every frozen policy ({', '.join(FROZEN_POLICY_IDS)})"
    else:
        named = ", ".join(policies) or "none"
    bound = state["max_signal_count"]
    limit = f"{default_bound} (the default)" if bound is None else str(bound)
    return f"tenant {tenant_id}: promotion policies {named}; max signal count {limit}"


@command(app, "set-limits", help="how many runs and steps a tenant may have in flight at once")
async def set_limits(
    ctx: Context,
    tenant_id: TenantId,
    runs_in_flight: Limit = None,
    steps_in_flight: Limit = None,
    as_json: Json = False,
) -> None:
    state = _guard(tenants.set_flight_limits, ctx.sessions, tenant_id,
                  runs=_limit(runs_in_flight, "--runs-in-flight"),
                  steps=_limit(steps_in_flight, "--steps-in-flight"))  # fmt: skip
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
        return f"tenant {tenant_id}: " + "; ".join(shown)

    output(as_json, state, text)


def _egress_text(tenant_id: str, rules: list[dict] | None) -> str:
    if not rules:
        return f"tenant {tenant_id}: no egress allow-list entries (the default policy applies)"
    lines = [f"{r['scheme']}://{r['host']}:{r['port']}" for r in rules]
    return f"tenant {tenant_id}: egress allowed to\n" + "\n".join(f"  {line}" for line in lines)


@command(app, "egress", help="show or set a tenant's egress allow-list (outbound http/llm calls)")
async def egress(
    ctx: Context,
    tenant_id: TenantId,
    allow: Annotated[
        list[str] | None,
        typer.Option(
            metavar="RULE",
            help="scheme://host[:port] or a JSON rule; repeat for more",
            callback=exclusive("allow", "clear"),
        ),
    ] = None,
    clear: Annotated[
        bool,
        typer.Option("--clear", help="no entries of its own", callback=exclusive("allow", "clear")),
    ] = False,
    as_json: Json = False,
) -> None:
    try:
        if allow:
            rules = tenants.set_egress_allow(ctx.sessions, tenant_id, tenants.parse_allow(allow))
        elif clear:
            rules = tenants.set_egress_allow(ctx.sessions, tenant_id, None)
        else:
            rules = tenants.get_egress_allow(ctx.sessions, tenant_id)
    except AdminError as exc:
        raise CliError(tenant_hint(str(exc))) from None
    output(as_json, {"tenant_id": tenant_id, "egress_allow": rules},
           lambda d: _egress_text(d["tenant_id"], d["egress_allow"]))  # fmt: skip


def _pairs(texts: list[str] | None, flag: str) -> dict[str, str]:
    pairs = {}
    for text in texts or []:
        name, sep, value = text.partition("=")
        if not sep or not name.strip():
            raise CliError(f"{flag}: expected OPTION=VALUE, got {text!r}")
        pairs[name.strip()] = value.strip()
    return pairs


def _value(text: str) -> Any:
    """true/false and numbers as JSON; anything else (STRICT, CONTINUE, ...) as text."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _governance_text(view: dict[str, Any]) -> str:
    settings = {k: v for k, v in view["governance"].items() if k != "loosen" and v is not None}
    loosen = view["governance"].get("loosen") or {}
    lines = [f"tenant {view['tenant_id']}: governance settings"]
    lines += [f"  {k} = {json.dumps(v)}" for k, v in sorted(settings.items())] or [
        "  (the worker's defaults)"
    ]
    lines += [f"  {k} may be loosened by {', '.join(v)}" for k, v in sorted(loosen.items())] or [
        "  no option may be loosened by a run"
    ]
    return "\n".join(lines)


@command(app, "governance", help="show or change a tenant's governance settings (runs may only "
         "tighten them)")  # fmt: skip
async def governance(
    ctx: Context,
    tenant_id: TenantId,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", metavar="OPTION=VALUE", help="set a setting; repeat for more"),
    ] = None,
    unset: Annotated[
        list[str] | None,
        typer.Option(metavar="OPTION", help="back to the worker's default; repeat for more"),
    ] = None,
    loosen: Annotated[
        list[str] | None,
        typer.Option(
            metavar="OPTION=AUTHORITY[,AUTHORITY]",
            help="who may loosen OPTION in a run ('none': nobody); repeat for more",
        ),
    ] = None,
    clear: Annotated[
        bool, typer.Option("--clear", help="the worker's defaults, nothing loosened")
    ] = False,
    as_json: Json = False,
) -> None:
    changes = _pairs(set_, "--set")
    grants = _pairs(loosen, "--loosen")
    try:
        if clear or changes or unset or grants:
            current = {} if clear else tenants.get_governance(ctx.sessions, tenant_id).model_dump(
                mode="json", exclude_none=True)  # fmt: skip
            current.update({name: _value(value) for name, value in changes.items()})
            for name in unset or []:
                current.pop(name, None)
            allowed = current.setdefault("loosen", {})
            for name, who in grants.items():
                authorities = [a.strip() for a in who.split(",") if a.strip()]
                if authorities == ["none"]:
                    allowed.pop(name, None)
                else:
                    allowed[name] = authorities
            view = tenants.set_governance(ctx.sessions, tenant_id, current)
        else:
            view = {"tenant_id": tenant_id, "governance": tenants.get_governance(
                ctx.existing_sessions, tenant_id).model_dump(mode="json")}  # fmt: skip
    except AdminError as exc:
        raise CliError(tenant_hint(str(exc))) from None
    output(as_json, view, _governance_text)
