"""Pure domain code: enums, payload models and decisions. No I/O, no clocks.

Workflows and activities both import from here, so nothing in this package may touch
the database, the network, the environment or the wall clock.
"""
