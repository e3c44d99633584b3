"""Deployment rules: which model goes live, and what may be deleted.

Deciding what goes live takes the project's row lock first (``store.lock_project``):
two deploys, automatic deploys or monitoring rounds of one project never interleave.
A model is loaded (its artifact validated) before it is deployed: what cannot load
never goes live.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pyml.core.metrics import KEY_METRIC
from pyml.errors import InvalidParameterValue, ObjectNotInPrerequisiteState
from pyml.server import privileges, store
from pyml.server._db import Db

Load = Callable[[int], Any]  # loads (and caches) a model by id: raises XX001 if it cannot


def deploy(
    db: Db, project_name: str, strategy: str, algorithm: str | None, load: Load
) -> tuple[str, str, str, int]:
    """Deploy the project's model chosen by ``strategy`` (optionally of ``algorithm`` only)."""
    from pyml.core.algorithms import ALGORITHMS

    project = store.require_project(db, project_name)
    privileges.require(db, project, "deploy")
    if algorithm is not None and algorithm not in ALGORITHMS:
        raise InvalidParameterValue(f'unknown algorithm "{algorithm}"')
    store.lock_project(db, project.id)
    if strategy == "best_score":
        model_id = store.best_model(db, project.id, KEY_METRIC[project.task], algorithm)
    elif strategy == "most_recent":
        model_id = store.most_recent_model(db, project.id, algorithm)
    else:
        model_id = store.previous_deployed_model(db, project.id)
        if model_id is None:
            raise ObjectNotInPrerequisiteState(
                f'project "{project_name}" has no earlier deployment to roll back to'
            )
    if model_id is None:
        which = f' with algorithm "{algorithm}"' if algorithm else ""
        raise ObjectNotInPrerequisiteState(
            f'project "{project_name}" has no trained model{which}',
            hint="Train one with pyml.train first.",
        )
    model = load(model_id)
    store.insert_deployment(db, project.id, model_id, strategy)
    return project.name, strategy, model.algorithm, model_id


def deploy_model(db: Db, model_id: int, load: Load) -> tuple[str, str, str, int]:
    """Deploy one model by id (strategy ``specific``)."""
    model = store.get_model(db, model_id)
    privileges.require(db, privileges.ProjectName(model.project_id, model.project), "deploy")
    if model.status != "successful":
        raise InvalidParameterValue(
            f'model {model_id} has status "{model.status}" and cannot be deployed'
        )
    store.lock_project(db, model.project_id)
    load(model_id)
    store.insert_deployment(db, model.project_id, model_id, "specific")
    return model.project, "specific", model.algorithm, model_id


def inputs_change(db: Db, live_id: int, new_id: int) -> str | None:
    """Why model ``new_id`` cannot replace ``live_id`` without its callers changing what
    they pass (feature names, types or order; label), or None when it can."""
    live, new = store.model_inputs(db, live_id), store.model_inputs(db, new_id)
    for role, what in (("feature", "features"), ("label", "label")):
        before = [(c.name, c.type) for c in live if c.role == role]
        after = [(c.name, c.type) for c in new if c.role == role]
        if before != after:
            return (
                f"its {what} differ from the live model's: "
                f"{_columns(after)} instead of {_columns(before)}"
            )
    return None


def _columns(columns: list[tuple[str, str]]) -> str:
    return "(" + ", ".join(f"{name} {type_}" for name, type_ in columns) + ")"


def delete_model(db: Db, model_id: int, force: bool) -> None:
    model = store.get_model(db, model_id)
    privileges.require(db, privileges.ProjectName(model.project_id, model.project), "admin")
    store.lock_project(db, model.project_id)
    _, live = store.live_model_id(db, model.project)
    if live == model_id and not force:
        raise ObjectNotInPrerequisiteState(
            f'model {model_id} is the live model of project "{model.project}"',
            hint="Deploy another model first, or pass force => true.",
        )
    store.delete_model(db, model_id)


def delete_project(db: Db, project_name: str, force: bool) -> None:
    project = store.require_project(db, project_name)
    privileges.require(db, project, "admin")
    store.lock_project(db, project.id)
    _, live = store.live_model_id(db, project_name)
    if live is not None and not force:
        raise ObjectNotInPrerequisiteState(
            f'project "{project_name}" has a live model ({live})',
            hint="Pass force => true to delete the project with all its models.",
        )
    streamed = store.project_has_streams(db, project.id)
    if streamed:
        raise ObjectNotInPrerequisiteState(
            f'project "{project_name}" streams {", ".join(streamed)}',
            hint=f"Call pyml.unstream('{project_name}', relation) for each first.",
        )
    store.delete_project(db, project.id)
