"""The HTTP API of governed-runs (FastAPI): runs, their control, evidence, candidates, alerts.

``api.app.create_app`` builds the application; ``api.server`` serves it inside an
existing asyncio loop (beside the worker) and ``python -m api`` serves it alone.
"""
