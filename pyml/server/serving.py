"""Serving: loaded models, who is live, who may call; one :class:`Serving` per session.

Kept by the session's :class:`~pyml.server.session.Session`, never in module globals.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from pyml.core.model import Model, ModelCache
from pyml.errors import ObjectNotInPrerequisiteState
from pyml.server import privileges, store
from pyml.server._board import DELETED, Board, Freshness, Replayed
from pyml.server._db import Db, user_id_function
from pyml.server._spool import Logger, Spool

# Rights that come from role membership (GRANT role TO ...) change without any note on the
# board: the rights a session checked are trusted this long, then checked again.
RIGHTS_SECONDS = 1.0


class Serving:
    """Models by id (immutable, so cached as long as there is room), the live model of
    each project and the privileges checked for each role (cached while the notice board
    says nothing changed)."""

    def __init__(self, db: Db):
        self.models = ModelCache()
        self.live: dict[str, Model] = {}
        # (role oid, project name or model id) -> the model's online predictor, for a role
        # whose "predict" privilege was checked; used while clean()
        self.online: dict[tuple[int, str | int], Any] = {}
        # (role oid, project id, privilege) checked since the last change
        self.rights: set[tuple[int, int, str]] = set()
        self.user_id: Callable[[], int] = user_id_function()
        try:
            board: Board | None = Board()
        except OSError:  # no writable data directory: look the live model up every call
            board = None
        self.database = store.database_oid(db)
        # On a hot standby nobody pins notes (triggers do not fire during WAL replay): the
        # session looks its live models up again every REPLAY_SECONDS instead. A standby
        # promoted later keeps doing so for the sessions that began before.
        self.standby = store.in_recovery(db)
        self.fresh: Freshness | Replayed | None
        if self.standby:
            self.fresh = Replayed()
        else:
            self.fresh = Freshness(board, self.database) if board else None
        self._rights_until = 0.0
        # project name -> its prediction logger (None: not logged); rebuilt like self.live
        self.loggers: dict[str, Logger | None] = {}
        self._spool: Spool | None = None
        self.unlogged: set[str] = set()  # logged projects served unlogged (on a standby)

    @property
    def rights_until(self) -> float:
        """Until when (``time.monotonic()``) the rights checked stay cached."""
        return self._rights_until

    def clean(self) -> bool:
        """True when nothing cached may have changed since the last call (the fast path)."""
        fresh = self.fresh
        return fresh is not None and fresh.clean() and time.monotonic() < self._rights_until

    def _refresh(self, db: Db) -> bool:
        """Forget what may have changed since the last call; True when nothing did."""
        if self.clean():
            return True
        self.online.clear()
        self.rights.clear()
        self._rights_until = time.monotonic() + RIGHTS_SECONDS
        fresh = self.fresh
        if fresh is not None and fresh.clean():
            return True  # only the rights expired: models and loggers stay
        self.live.clear()
        self.loggers.clear()
        if fresh is not None:
            notes = fresh.take_new_notes()
            for note in notes:
                if note.kind == DELETED:
                    self.forget(note.model_id)
            fresh.pending = store.unsettled(db, fresh.pending)
            if self.standby:  # models deleted by replay: no note says which
                cached = self.models.ids()
                if cached:
                    kept = store.existing_models(db, cached)
                    for model_id in cached:
                        if model_id not in kept:
                            self.forget(model_id)
        return False

    def refresh(self, db: Db) -> None:
        """Forget what may have changed since the last call (a deploy, a grant, a second)."""
        self._refresh(db)

    def authorize(
        self, db: Db, project: store.ProjectRow | privileges.ProjectName, privilege: str
    ) -> None:
        """42501 unless the current role holds ``privilege`` on ``project`` (id and name);
        checked once while nothing changes."""
        key = (db.user_oid(), project.id, privilege)
        if key not in self.rights:
            privileges.require(db, project, privilege)
            self.rights.add(key)

    def live_model(self, db: Db, project: str, privilege: str | None = None) -> Model:
        """The project's live model; with ``privilege``, for a caller who must hold it
        (checked before anything about the project's models is told)."""
        if self._refresh(db):
            model = self.live.get(project)
            if model is not None:
                if privilege is not None:
                    assert model.project_id is not None  # loaded from its row
                    self.authorize(db, privileges.ProjectName(model.project_id, project), privilege)
                return model
        project_row, model_id = store.live_model_id(db, project)
        if privilege is not None:
            self.authorize(db, project_row, privilege)
        if model_id is None:
            raise ObjectNotInPrerequisiteState(
                f'project "{project}" has no deployed model',
                hint=f"Call pyml.deploy('{project}') first.",
            )
        model = self.model(db, model_id)
        self.live[project] = model
        return model

    def model(self, db: Db, model_id: int, privilege: str | None = None) -> Model:
        """A model by id; with ``privilege``, for a caller who must hold it on the model's
        project (checked before the artifact is loaded)."""
        row = None
        if privilege is not None:
            self._refresh(db)  # first: it forgets the models deleted since the last call
        model = self.models.get(model_id)
        if privilege is not None:
            if model is None:
                row = store.get_model(db, model_id)
                project = privileges.ProjectName(row.project_id, row.project)
            else:
                assert model.project_id is not None  # loaded from its row
                project = privileges.ProjectName(model.project_id, model.project)
            self.authorize(db, project, privilege)
        if model is None:
            row = row or store.get_model(db, model_id)
            if row.status != "successful":
                raise ObjectNotInPrerequisiteState(f"model {model_id} was not trained successfully")
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
        if setting is not None and self.standby:
            # The spool is collected into the primary's tables, which a standby cannot
            # write: its calls are served, not logged (said once per session and project).
            if model.project not in self.unlogged:
                self.unlogged.add(model.project)
                db.notice(
                    f'pyml: calls of project "{model.project}" are not logged on a hot standby'
                )
        elif setting is not None:
            if self._spool is None:
                self._spool = Spool(self.database)
            logger = Logger(self._spool, setting.project_id, setting.sample_rate)
        self.loggers[model.project] = logger
        return logger

    def forget(self, model_id: int) -> None:
        self.models.discard(model_id)
        self.live = {k: m for k, m in self.live.items() if m.id != model_id}
        self.online.clear()


def announce(db: Db, board: Board, kind: int, deployment_id: int, model_id: int) -> None:
    """Pin a note for the other sessions of the server (called by the registry's triggers)."""
    board.pin(store.database_oid(db), kind, deployment_id, model_id, store.current_xid(db))
