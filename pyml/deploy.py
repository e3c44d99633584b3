"""Deployment rules: which model goes live, and what may be deleted."""

from __future__ import annotations

from pyml import store
from pyml._db import Db
from pyml.errors import InvalidParameterValue, ObjectNotInPrerequisiteState
from pyml.train import KEY_METRIC


def deploy(db: Db, project_name: str, strategy: str, algorithm: str | None
           ) -> tuple[str, str, str, int]:
    """Deploy the project's model chosen by ``strategy`` (optionally of ``algorithm`` only)."""
    from pyml._algorithms import ALGORITHMS

    project = store.require_project(db, project_name)
    if algorithm is not None and algorithm not in ALGORITHMS:
        raise InvalidParameterValue(f'unknown algorithm "{algorithm}"')
    if strategy == "best_score":
        model_id = store.best_model(db, project["id"], KEY_METRIC[project["task"]], algorithm)
    elif strategy == "most_recent":
        model_id = store.most_recent_model(db, project["id"], algorithm)
    else:
        model_id = store.previous_deployed_model(db, project["id"])
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
    store.insert_deployment(db, project["id"], model_id, strategy)
    model = store.get_model(db, model_id)
    return project["name"], strategy, model["algorithm"], model_id


def deploy_model(db: Db, model_id: int) -> tuple[str, str, str, int]:
    """Deploy one model by id (strategy ``specific``)."""
    model = store.get_model(db, model_id)
    if model["status"] != "successful":
        raise InvalidParameterValue(
            f'model {model_id} has status "{model["status"]}" and cannot be deployed'
        )
    store.insert_deployment(db, model["project_id"], model_id, "specific")
    return model["project"], "specific", model["algorithm"], model_id


def delete_model(db: Db, model_id: int, force: bool) -> None:
    model = store.get_model(db, model_id)
    _, live = store.live_model_id(db, model["project"])
    if live == model_id and not force:
        raise ObjectNotInPrerequisiteState(
            f'model {model_id} is the live model of project "{model["project"]}"',
            hint="Deploy another model first, or pass force => true.",
        )
    store.delete_model(db, model_id)


def delete_project(db: Db, project_name: str, force: bool) -> None:
    project, live = store.live_model_id(db, project_name)
    if live is not None and not force:
        raise ObjectNotInPrerequisiteState(
            f'project "{project_name}" has a live model ({live})',
            hint="Pass force => true to delete the project with all its models.",
        )
    streamed = store.project_has_streams(db, project["id"])
    if streamed:
        raise ObjectNotInPrerequisiteState(
            f'project "{project_name}" streams {", ".join(streamed)}',
            hint=f"Call pyml.unstream('{project_name}', relation) for each first.",
        )
    store.delete_project(db, project["id"])
