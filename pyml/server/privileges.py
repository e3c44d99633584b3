"""Who may do what to a project: owners, grants, and the check every API function makes.

Every project has an owner, the role that created it (``pyml.projects.owner``). The
owner, its members and superusers hold every privilege on it; other roles hold what
``pyml.grant`` gave them (or a role they are a member of):

- ``predict``: predictions, explanations, the project's models, metrics and lineage;
- ``train``: training and snapshots for the project (and ``predict``);
- ``deploy``: deploying and rolling back (and ``predict``);
- ``admin``: everything, including grant/revoke, deleting, monitoring, the prediction
  log and streams.

A missing privilege is 42501, naming the project and the privilege. The rule itself
lives in SQL (``pyml._projects_with``), where row-level security uses it too.
"""

from __future__ import annotations

from typing import NamedTuple

from pyml.core import params
from pyml.errors import InsufficientPrivilege
from pyml.server import store
from pyml.server._db import Db

PRIVILEGES = ("predict", "train", "deploy", "admin")


class ProjectName(NamedTuple):
    """A project as a privilege check names it, where no ``pyml.projects`` row is at hand
    (a model's project, a stream's): its id, and its name for the message."""

    id: int
    name: str


def holds(db: Db, project_id: int, privilege: str) -> bool:
    """Whether the current role holds ``privilege`` on the project."""
    return store.has_privilege(db, project_id, privilege)


def require(db: Db, project: store.ProjectRow | ProjectName, privilege: str) -> None:
    """42501 unless the current role holds ``privilege`` on ``project`` (its id; its name for
    the message)."""
    if not holds(db, project.id, privilege):
        raise denied(db, project.name, privilege)


def denied(db: Db, project_name: str, privilege: str) -> InsufficientPrivilege:
    role = db.caller().name
    return InsufficientPrivilege(
        f'permission denied for project "{project_name}"',
        detail=f'Role "{role}" does not have the "{privilege}" privilege on it.',
        hint="The project's owner or one of its admins can grant it with pyml.grant.",
    )


def grant(db: Db, project_name: str, grantee: str, privilege: str) -> None:
    """``pyml.grant``: needs ``admin`` on the project."""
    privilege = params.one_of("privilege", privilege, PRIVILEGES)
    project = store.require_project(db, params.non_empty("project_name", project_name))
    require(db, project, "admin")
    role = store.role_name(db, grantee)
    store.save_grant(db, project.id, role, privilege, db.caller().name)


def revoke(db: Db, project_name: str, grantee: str, privilege: str) -> None:
    """``pyml.revoke``: needs ``admin`` on the project. The owner's privileges come with
    ownership and cannot be revoked."""
    privilege = params.one_of("privilege", privilege, PRIVILEGES)
    project = store.require_project(db, params.non_empty("project_name", project_name))
    require(db, project, "admin")
    role = store.role_name(db, grantee)
    if not store.delete_grant(db, project.id, role, privilege):
        if role == project.owner:
            db.notice(
                f'role "{role}" owns project "{project_name}": it keeps every privilege on it'
            )
        else:
            db.notice(
                f'role "{role}" had no "{privilege}" privilege on project '
                f'"{project_name}" to revoke'
            )
