"""API key commands: create (the key is printed once), list, revoke."""

from typing import Annotated

import typer

from cli.context import CliError, Context, Json, command, output, tenant_hint
from domain.candidates import HUMAN_AUTHORITIES
from domain.enums import Authority
from services import api_keys
from services.errors import ApiKeyError

app = typer.Typer(name="apikey", help="manage HTTP API keys")


@command(app, "create", help="create a key for a tenant (printed once)")
async def create(
    ctx: Context,
    tenant_id: Annotated[str, typer.Argument()],
    authority: Annotated[Authority, typer.Option()],
    promotion_authority: Annotated[
        str | None,
        typer.Option(
            help="the authority it promotes candidates with: "
            f"{', '.join(HUMAN_AUTHORITIES)} (default: PROMOTION_AUTHORITIES of --authority)",
        ),
    ] = None,
    name: Annotated[str | None, typer.Option(help="a label for the key")] = None,
    as_json: Json = False,
) -> None:
    try:
        key_id, key = api_keys.create_key(
            ctx.sessions, tenant_id, authority, name=name, promotion_authority=promotion_authority
        )
    except ApiKeyError as exc:
        raise CliError(tenant_hint(str(exc))) from None
    data = {"key_id": key_id, "tenant_id": tenant_id, "authority": authority,
            "promotion_authority": promotion_authority, "key": key}  # fmt: skip
    output(as_json, data, lambda d: (
        f"api key {d['key_id']} for tenant {d['tenant_id']} ({d['authority']}"
        f"{_promotes_as(d)}):\n{d['key']}\n"
        "store it now: it is not shown again (send it as the X-API-Key header)"))  # fmt: skip


def _promotes_as(key: dict) -> str:
    authority = key.get("promotion_authority")
    return f", promotes as {authority}" if authority else ""


@command(app, "list", help="list keys (never the keys themselves)")
async def list_keys(
    ctx: Context, tenant: Annotated[str | None, typer.Option()] = None, as_json: Json = False
) -> None:
    output(as_json, api_keys.list_keys(ctx.existing_sessions, tenant), lambda ks: "\n".join(
        f"{k['id']} {k['prefix']}... tenant={k['tenant_id']} {k['authority']}{_promotes_as(k)}"
        f" {k['name']}"
        f"{' REVOKED' if k['revoked'] else ''}" for k in ks) or "no api keys")  # fmt: skip


@command(app, "revoke", help="revoke a key by its id")
async def revoke(ctx: Context, key_id: Annotated[str, typer.Argument()]) -> None:
    try:
        api_keys.revoke_key(ctx.sessions, key_id)
    except ApiKeyError as exc:
        raise CliError(str(exc)) from None
    print(f"api key {key_id} revoked")
