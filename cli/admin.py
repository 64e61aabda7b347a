"""Admin commands: policy rules, stop requests."""

import json
from typing import Annotated

import typer

from cli.context import CliError, Context, Json, command, output, tenant_hint
from domain.enums import PolicyOutcome, RuleKind
from services import control, rules
from services.errors import AdminError

policy = typer.Typer(name="policy", help="manage policy rules")
app = typer.Typer()  # request-stop

TenantId = Annotated[str, typer.Argument()]
Name = Annotated[str, typer.Argument()]


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


@command(policy, "add", help="add a rule")
async def policy_add(
    ctx: Context,
    tenant_id: TenantId,
    name: Name,
    kind: Annotated[RuleKind, typer.Option()],
    params: Annotated[str, typer.Option(help='JSON, e.g. {"max": 5}')],
    outcome: Annotated[PolicyOutcome, typer.Option()],
) -> None:
    _guard(rules.add_rule, ctx.sessions, tenant_id, name, kind, _json(params, "--params"),
           outcome)  # fmt: skip
    print(f"rule {name} added for tenant {tenant_id}")


@command(policy, "list", help="list rules")
async def policy_list(
    ctx: Context, tenant: Annotated[str | None, typer.Option()] = None, as_json: Json = False
) -> None:
    output(as_json, rules.list_rules(ctx.existing_sessions, tenant), lambda rs: "\n".join(
        f"{r['tenant_id']}/{r['name']}: {r['kind']} {json.dumps(r['params'])} -> {r['outcome']}"
        f" {'enabled' if r['enabled'] else 'disabled'} v{r['version']}" for r in rs)
        or "no rules")  # fmt: skip


async def _update(ctx: Context, tenant_id: str, name: str, *, enabled: bool | None = None,
                  params: str | None = None, outcome: str | None = None) -> None:  # fmt: skip
    state = _guard(rules.update_rule, ctx.sessions, tenant_id, name, enabled=enabled,
                   params=_json(params, "--params"), outcome=outcome)  # fmt: skip
    print(f"rule {name}: {'enabled' if state['enabled'] else 'disabled'} v{state['version']}")


@command(policy, "enable", help="enable a rule")
async def policy_enable(ctx: Context, tenant_id: TenantId, name: Name) -> None:
    await _update(ctx, tenant_id, name, enabled=True)


@command(policy, "disable", help="disable a rule")
async def policy_disable(ctx: Context, tenant_id: TenantId, name: Name) -> None:
    await _update(ctx, tenant_id, name, enabled=False)


@command(policy, "set", help="change a rule's params or outcome")
async def policy_set(
    ctx: Context,
    tenant_id: TenantId,
    name: Name,
    params: Annotated[str | None, typer.Option()] = None,
    outcome: Annotated[PolicyOutcome | None, typer.Option()] = None,
) -> None:
    await _update(ctx, tenant_id, name, params=params, outcome=outcome)


@command(app, "request-stop", help="ask a run to stop at its next policy check")
async def request_stop(
    ctx: Context,
    run_id: Annotated[str, typer.Argument()],
    reason: Annotated[str, typer.Option()] = "stop requested by operator",
) -> None:
    _guard(control.request_stop, ctx.sessions, run_id, reason)
    print(f"stop requested for run {run_id}")
