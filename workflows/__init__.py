"""Deterministic workflow code only (DESIGN.md, layers)."""
