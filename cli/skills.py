"""The skills command: the catalog this process discovered (domain.skill_discovery).

Lists every installed skill (name, version, source, cost model, input fields; ``--json``
adds each input's JSON schema) and every entry point that failed to load, with its error.
It reads no database and asks no server: what it shows is what a worker started here
would discover.
"""

from typing import Any

import typer

from cli.context import Context, Json, command, output
from domain.skill_discovery import installed_catalog

app = typer.Typer()


def _cost(model: dict[str, Any]) -> str:
    if model["kind"] == "fixed":
        return f"fixed {model['amount']}"
    return str(model["kind"])


def _fields(schema: dict[str, Any]) -> str:
    required = set(schema.get("required", []))
    names = [f"{n}{'' if n in required else '?'}" for n in schema.get("properties", {})]
    return ", ".join(names) or "(none)"


def catalog_text(catalog: dict[str, Any]) -> str:
    lines = [f"{len(catalog['skills'])} skills installed"]
    for s in catalog["skills"]:
        lines.append(
            f"  {s['name']} {s['version']} ({s['source']}): {s['description'] or '-'}\n"
            f"      input: {_fields(s['input_schema'])}; cost: {_cost(s['cost_model'])}; "
            f"time limit {s['timeout_seconds']:g} s{'; calls out' if s['calls_out'] else ''}"
        )
    if catalog["failed"]:
        lines.append(f"{len(catalog['failed'])} failed to load")
        lines += [
            f"  FAILED {f['entry_point']} ({f['distribution']}): {f['error']}"
            for f in catalog["failed"]
        ]
    return "\n".join(lines)


@command(app, "skills", help="list the installed skills and the plugins that failed to load")
async def skills(ctx: Context, as_json: Json = False) -> None:
    output(as_json, installed_catalog().describe(), catalog_text)
