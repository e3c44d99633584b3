"""Import: a model bundle (:mod:`pyml.core.bundle`) into this database's registry, as a new
model with new ids (``pyml.import_model``).

The bundle is checked (22023, XX001) and its model loaded from its files exactly as a stored
model is (XX001 for one that cannot be) before anything is written; the project's privileges
are checked before its model is loaded. Everything is written in the caller's transaction,
through :mod:`pyml.server.store`: the project when it is missing (the caller owns it), a
snapshot row (the original's relation name, split, column statistics and fingerprint; its
relation need not exist here), the model row and its files, and a deployment (strategy
``specific``) when asked.
"""

from __future__ import annotations

from typing import Any

from pyml.core import bundle
from pyml.errors import ObjectNotInPrerequisiteState
from pyml.server import deployment, privileges, store
from pyml.server._db import Db


def import_model(db: Db, data: bytes, project_name: str | None, deploy: bool) -> int:
    """``pyml.import_model``: the new model's id."""
    document = bundle.loads(data)
    name = project_name if project_name is not None else document["project"]["name"]
    task = document["project"]["task"]
    needs = ("train", "deploy") if deploy else ("train",)
    project = store.get_project(db, name)
    if project is not None:
        _check(db, project, task, needs)
    model = bundle.model(document)  # XX001 for a model that cannot be loaded: nothing written
    if project is None:
        project, created = store.create_project(db, name, task)
        if not created:  # a concurrent session just created it
            _check(db, project, task, needs)
    snapshot = document["snapshot"]
    snapshot_id = store.insert_snapshot(
        db,
        relation_name=snapshot["relation_name"],
        y_column_name=snapshot["y_column_name"],
        test_size=snapshot["test_size"],
        test_sampling=snapshot["test_sampling"],
        columns=snapshot["columns"],
        row_count=snapshot["row_count"],
        data_fingerprint=snapshot["data_fingerprint"],
        materialized=False,
        preprocess=snapshot.get("preprocess") or {},
    )
    spec = document["model"]
    model_id = store.insert_model(
        db,
        bundle.file_rows(document),
        project_id=project.id,
        snapshot_id=snapshot_id,
        algorithm=spec["algorithm"],
        hyperparams=spec["hyperparams"],
        search=spec.get("search"),
        search_params=spec.get("search_params") or {},
        search_args=spec.get("search_args") or {},
        status="successful",
        metrics=spec["metrics"],
        num_features=spec["num_features"],
        feature_names=spec["feature_names"],
        classes=spec["classes"],
        preprocess=spec["preprocess"] or {},
        runtime=spec["runtime"],
        lineage=_lineage(db, document),
        baseline=spec.get("baseline"),
    )
    store.touch_project(db, project.id)
    if deploy:
        deployment.deploy_model(db, model_id, lambda _: model)  # loaded and checked above
    return model_id


def _check(db: Db, project: store.ProjectRow, task: str, needs: tuple[str, ...]) -> None:
    """42501 without the privileges the import needs; 55000 for a project of another task."""
    for privilege in needs:
        privileges.require(db, project, privilege)
    if project.task != task:
        raise ObjectNotInPrerequisiteState(
            f'project "{project.name}" has task "{project.task}", not "{task}"',
            detail=f"The bundle holds a {task} model.",
            hint="Import it into another project: pass project_name.",
        )


def _lineage(db: Db, document: dict[str, Any]) -> dict[str, Any]:
    """The bundle's lineage, and where the model comes from: ``imported`` (the bundle's
    source, when and by whom it was imported, into which database; an earlier import of
    the same model kept as ``earlier``)."""
    lineage = dict(document["model"]["lineage"] or {})
    where = store.context(db)
    imported: dict[str, Any] = {
        "from": document["source"],
        "imported_at": where.at,
        "imported_by": where.database_user,
        "database": where.database,
    }
    if "imported" in lineage:
        imported["earlier"] = lineage["imported"]
    lineage["imported"] = imported
    return lineage
