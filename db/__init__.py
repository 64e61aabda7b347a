"""Persistence: typed models, engines and sessions, migrations and read queries.

This package imports neither ``workflows`` nor ``activities`` (DESIGN.md, layers).
"""
