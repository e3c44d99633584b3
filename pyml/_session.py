"""What one database session keeps for serving: loaded models and who is live.

Kept in PL/Python's ``GD`` (one per session), never in module globals.
"""

from __future__ import annotations

from typing import Any

from pyml import store
from pyml._board import DELETED, Board, Freshness
from pyml._db import Db
from pyml._spool import Logger, Spool
from pyml.errors import ObjectNotInPrerequisiteState
from pyml.predict import Model, ModelCache


class Serving:
    """Models by id (immutable, so cached as long as there is room) and the live model of
    each project (cached while the notice board says nothing changed)."""

    def __init__(self, db: Db):
        self.models = ModelCache()
        self.live: dict[str, Model] = {}
        # project name or model id -> the model's online predictor; used while fresh.clean()
        self.online: dict[str | int, Any] = {}
        try:
            board: Board | None = Board()
        except OSError:  # no writable data directory: look the live model up every call
            board = None
        self.database = store.database_oid(db)
        self.fresh = Freshness(board, self.database) if board else None
        # project name -> its prediction logger (None: not logged); rebuilt like self.live
        self.loggers: dict[str, Logger | None] = {}
        self._spool: Spool | None = None

    def _refresh(self, db: Db) -> bool:
        """Forget what may have changed since the last call; True when nothing did."""
        fresh = self.fresh
        if fresh is not None and fresh.clean():
            return True
        self.live.clear()
        self.online.clear()
        self.loggers.clear()
        if fresh is not None:
            notes = fresh.take_new_notes()
            for note in notes:
                if note.kind == DELETED:
                    self.forget(note.model_id)
            fresh.pending = store.unsettled(db, fresh.pending)
        return False

    def live_model(self, db: Db, project: str) -> Model:
        if self._refresh(db):
            model = self.live.get(project)
            if model is not None:
                return model
        project_row, model_id = store.live_model_id(db, project)
        if model_id is None:
            raise ObjectNotInPrerequisiteState(
                f'project "{project}" has no deployed model',
                hint=f"Call pyml.deploy('{project}') first.",
            )
        model = self.model(db, model_id)
        self.live[project] = model
        return model

    def model(self, db: Db, model_id: int) -> Model:
        model = self.models.get(model_id)
        if model is None:
            row = store.get_model(db, model_id)
            if row["status"] != "successful":
                raise ObjectNotInPrerequisiteState(
                    f"model {model_id} was not trained successfully"
                )
            files = store.model_files(db, model_id)
            model = self.models.put(
                Model.from_rows(row, files, store.feature_columns(db, model_id))
            )
        return model

    def logger(self, db: Db, model: Model) -> Logger | None:
        """How calls of the model's project are logged (pyml.log_predictions), or None."""
        self._refresh(db)
        if model.project in self.loggers:
            return self.loggers[model.project]
        setting = store.prediction_logging(db, model.project)
        logger = None
        if setting is not None:
            if self._spool is None:
                self._spool = Spool(self.database)
            logger = Logger(self._spool, setting["project_id"], setting["sample_rate"])
        self.loggers[model.project] = logger
        return logger

    def forget(self, model_id: int) -> None:
        self.models.discard(model_id)
        self.live = {k: m for k, m in self.live.items() if m.id != model_id}
        self.online.clear()


def announce(db: Db, board: Board, kind: int, deployment_id: int, model_id: int) -> None:
    """Pin a note for the other sessions of the server (called by the deployments trigger)."""
    board.pin(store.database_oid(db), kind, deployment_id, model_id, store.current_xid(db))
