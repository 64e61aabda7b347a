"""Which build of the workflow code a worker runs, and which patches it lets new runs take.

Every worker reports a Worker Deployment Version: WORKER_DEPLOYMENT_NAME and a build id
(WORKER_BUILD_ID, or by default one derived from the code that decides what a workflow
commands: the sources of ``workflows/`` and ``domain/`` and the package version), so
Temporal records on each workflow task which build completed it. With
WORKER_VERSIONING=true the worker also opts into Worker Versioning: Temporal routes a run's
tasks only to workers of the version it runs on (PINNED: the one it started on;
AUTO_UPGRADE: the deployment's current version at its next task), and a new version gets
no task until it is made current (``temporal worker deployment set-current-version``).

HELD_PATCHES names ``workflow.patched`` ids (workflows/patches.py) that new runs must not
take yet: a worker that holds a patch runs the code that knows both branches but opens
every run on the branch before it, so a fleet can be upgraded (and rolled back) before any
run depends on the new branch (README "Reliability": deploys and rollbacks).
"""

import hashlib
from collections.abc import Callable, Iterable
from importlib import metadata
from pathlib import Path

from temporalio.common import VersioningBehavior, WorkerDeploymentVersion
from temporalio.worker import PatchActivationInput, WorkerDeploymentConfig

from runtime.settings import Settings
from workflows import patches
from workflows.reconcile import CROSS_CHECK_OPEN_RUNS

# No Path.resolve() at import: the workflow sandbox re-imports modules that import this one.
CHECKOUT = Path(__file__).parent.parent
# The code whose change can change what a workflow commands (activities cannot).
WORKFLOW_CODE = ("workflows", "domain")
DISTRIBUTION = "governed-runs"
BEHAVIORS = {"pinned": VersioningBehavior.PINNED, "auto_upgrade": VersioningBehavior.AUTO_UPGRADE}


def code_build_id(root: Path = CHECKOUT, packages: Iterable[str] = WORKFLOW_CODE) -> str:
    """``<package version>-<12 hex digits>``: a hash of every ``.py`` file of ``packages``
    (path and content), so two checkouts with the same workflow code get the same id."""
    digest = hashlib.sha256()
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            digest.update(path.relative_to(root).as_posix().encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
    return f"{package_version()}-{digest.hexdigest()[:12]}"


def package_version() -> str:
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "0"


def build_id(settings: Settings) -> str:
    return settings.worker_build_id or code_build_id()


def deployment_config(settings: Settings) -> WorkerDeploymentConfig:
    """The worker's deployment version; opted into Worker Versioning only when
    WORKER_VERSIONING is true (then every workflow gets WORKER_VERSIONING_BEHAVIOR)."""
    version = WorkerDeploymentVersion(settings.worker_deployment_name, build_id(settings))
    if not settings.worker_versioning:
        return WorkerDeploymentConfig(version=version, use_worker_versioning=False)
    return WorkerDeploymentConfig(
        version=version,
        use_worker_versioning=True,
        default_versioning_behavior=BEHAVIORS[settings.worker_versioning_behavior],
    )


class WorkerConfigError(ValueError):
    """A worker setting names something that does not exist (the worker does not start)."""


def known_patches() -> frozenset[str]:
    """Every ``workflow.patched`` id of the workflows (workflows/patches.py, and
    ReconcileWorkflow's earlier one)."""
    ids = {v for k, v in vars(patches).items() if k.isupper() and isinstance(v, str)}
    return frozenset(ids | {CROSS_CHECK_OPEN_RUNS})


def held_patches(settings: Settings) -> frozenset[str]:
    """HELD_PATCHES; an id that is no patch is refused (a typo would hold nothing)."""
    held = frozenset(settings.held_patches)
    unknown = sorted(held - known_patches())
    if unknown:
        raise WorkerConfigError(
            f"HELD_PATCHES names no patch: {', '.join(unknown)} "
            f"(patches: {', '.join(sorted(known_patches()))})"
        )
    return held


def patch_activation(settings: Settings) -> Callable[[PatchActivationInput], bool] | None:
    """The SDK's patch activation callback: a patch in HELD_PATCHES is not taken by a new
    run (``workflow.patched`` answers False and records nothing); None when none is held."""
    held = held_patches(settings)
    if not held:
        return None

    def activate(patch: PatchActivationInput) -> bool:
        return patch.patch_id not in held

    return activate
