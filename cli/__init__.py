"""The operator CLI (starter.py), on typer: one module per group of commands.

A command is ``async def handler(ctx: Context, ...)`` registered with
``cli.context.command``; typer parses its parameters, cli.main runs it. Errors end with
one line on stderr and a non-zero exit code.
"""
