"""The models a service serves, loaded from the registry and following its deployments.

- A project's live model is loaded on first use (or at start for ``projects``) with
  :meth:`pyml.core.model.Model.from_rows`: the rows of ``pyml.models`` / ``pyml.files`` read
  as the service's role (row-level security applies), sha256 checked, the same validators
  and loaders as SQL; ONNX parts through onnxruntime, LightGBM through its C API. Other
  models are refused (:func:`pyml.client.serve.protocol.unservable`).
- Only projects on which the role holds ``predict`` (``pyml._has_privilege``, as SQL checks
  it) are served; rights are checked again every :data:`RECHECK` seconds, so a revoke takes
  effect within that.
- A thread LISTENs on ``pyml_deploy`` on a connection of its own: a deployment of a served
  project loads the new live model and swaps it in (one dict assignment); requests in flight
  keep the model object they started with. When the database goes away the thread
  reconnects with backoff (0.1 s doubling to 5 s) and meanwhile the loaded models keep
  serving; once back, every served project's live model is read again (notifications sent
  while it was away are lost). On a hot standby, which cannot LISTEN, the served projects
  are read again every :data:`STANDBY_POLL` seconds instead.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg.rows import dict_row

from pyml.client.serve.protocol import SERVED_FORMATS, ProtocolError, Served, unservable
from pyml.core import artifacts
from pyml.core.model import Model
from pyml.core.registry import FileRow, ModelRow
from pyml.errors import PymlError

log = logging.getLogger("pyml.serve")

RECHECK = 5.0  # seconds between checks of the role's rights (and missed deployments)
STANDBY_POLL = 0.5  # on a hot standby: seconds between reads of the served projects
PINNED = 16  # pinned models (versions/{id}) kept loaded besides the live ones

PROJECT = (
    "SELECT p.id, p.name, pyml._has_privilege(p.id, 'predict') AS allowed,"
    " (SELECT d.model_id FROM pyml.deployments d WHERE d.project_id = p.id"
    "  ORDER BY d.id DESC LIMIT 1) AS model_id"
    " FROM pyml.projects p WHERE p.name = %s"
)
MODEL = (
    "SELECT m.id, m.project_id, p.name AS project, p.task, m.algorithm, m.status,"
    " COALESCE(m.metrics, '{}') AS metrics, m.num_features, m.feature_names, m.classes,"
    " m.snapshot_id, COALESCE(m.preprocess, '{}') AS preprocess"
    " FROM pyml.models m JOIN pyml.projects p ON p.id = m.project_id WHERE m.id = %s"
)
FILES = "SELECT part, format, sha256, data FROM pyml.files WHERE model_id = %s ORDER BY part"
COLUMNS = (
    "SELECT e.c ->> 'name' AS name FROM pyml.models m"
    " JOIN pyml.snapshots s ON s.id = m.snapshot_id,"
    " jsonb_array_elements(s.columns) WITH ORDINALITY AS e(c, i)"
    " WHERE m.id = %s AND e.c ->> 'role' = 'feature' ORDER BY e.i"
)
VERSIONS = (
    "SELECT m.id FROM pyml.models m JOIN pyml.projects p ON p.id = m.project_id"
    " WHERE p.name = %s AND m.status = 'successful' ORDER BY m.id"
)


class Unavailable(Exception):
    """The database cannot be reached (and the model is not loaded)."""


class Registry:
    """Loaded models by project, kept current. Thread-safe: requests read :attr:`live`
    (a dict whose values are replaced whole), loads run under a lock."""

    def __init__(self, url: str, projects: list[str] | None = None):
        self.url = url
        self.projects = projects  # None: any project the role may predict
        self.live: dict[str, Served | ProtocolError] = {}
        self.ids: dict[int, str] = {}  # project id -> name, of the projects in live
        self.pinned: OrderedDict[int, Served] = OrderedDict()
        self.connected = False  # the listener's connection is up
        self.loaded_once = False
        self.on_swap: Callable[[Served], None] | None = None
        self._conn: psycopg.Connection[Any] | None = None
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- life cycle ----------------------------------------------------------------

    def start(self) -> None:
        """Load the named projects (if any) and start following deployments."""
        for name in self.projects or []:
            try:
                self.get(name)
            except (ProtocolError, Unavailable) as exc:
                log.warning("project %s not loaded at start: %s", name, exc)
        self.loaded_once = True
        self._thread = threading.Thread(target=self._follow, name="pyml-serve-listen", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    @property
    def ready(self) -> bool:
        """Started, and every named project loaded (a database away does not make the
        service unready: it keeps serving the models it has)."""
        if not self.loaded_once:
            return False
        return all(isinstance(self.live.get(n), Served) for n in self.projects or [])

    # -- what requests use ---------------------------------------------------------

    def get(self, project: str) -> Served:
        """The live model of a project (loaded now if it is not yet)."""
        served = self.live.get(project)
        if served is None:
            with self._lock:
                served = self.live.get(project)
                if served is None:
                    served = self._load_project(project)
        if isinstance(served, ProtocolError):
            raise served
        return served

    def cached(self, project: str) -> Served | None:
        served = self.live.get(project)
        return served if isinstance(served, Served) else None

    def version(self, project: str, model_id: int) -> Served:
        """A pinned model of a project (``versions/{model_id}``)."""
        live = self.live.get(project)
        if isinstance(live, Served) and live.id == model_id:
            return live
        served = self.pinned.get(model_id)
        if served is None or served.project != project:
            with self._lock:
                served = self._load_version(project, model_id)
        return served

    def versions(self, project: str) -> list[int]:
        with self._lock:
            rows = self._query(VERSIONS, (project,))
        return [r["id"] for r in rows]

    # -- loading -------------------------------------------------------------------

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed or self._conn.broken:
            try:
                self._conn = psycopg.connect(
                    self.url, autocommit=True, row_factory=dict_row, connect_timeout=5
                )
            except psycopg.OperationalError as exc:
                raise Unavailable(f"the database cannot be reached: {exc}") from None
        return self._conn

    def _query(self, sql: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
        conn = self._connection()
        try:
            return conn.execute(sql, params).fetchall()
        except psycopg.OperationalError as exc:
            conn.close()
            raise Unavailable(f"the database cannot be reached: {exc}") from None

    def _project(self, project: str) -> dict[str, Any]:
        if self.projects is not None and project not in self.projects:
            raise ProtocolError(404, f'model "{project}" is not served here')
        rows = self._query(PROJECT, (project,))
        if not rows:
            raise ProtocolError(404, f'model "{project}" does not exist')
        row = rows[0]
        if not row["allowed"]:
            raise ProtocolError(
                403,
                f'permission denied for project "{project}": the service\'s role does not '
                'have the "predict" privilege on it',
            )
        return row

    def _load_project(self, project: str) -> Served | ProtocolError:
        row = self._project(project)
        if row["model_id"] is None:
            raise ProtocolError(
                404, f'project "{project}" has no deployed model (call pyml.deploy first)'
            )
        served = self._served(row["model_id"])
        self.ids[row["id"]] = project
        self._swap(project, served)
        return served

    def _load_version(self, project: str, model_id: int) -> Served:
        self._project(project)
        served = self._served(model_id)
        if isinstance(served, ProtocolError):
            raise served
        if served.project != project:
            raise ProtocolError(404, f'model {model_id} is not a model of project "{project}"')
        self.pinned[model_id] = served
        while len(self.pinned) > PINNED:
            self.pinned.popitem(last=False)
        return served

    def _served(self, model_id: int) -> Served | ProtocolError:
        """Model ``model_id`` loaded, or the error every request for it gets."""
        for known in (*self.pinned.values(), *self.live.values()):
            if isinstance(known, Served) and known.id == model_id:
                return known
        rows = self._query(MODEL, (model_id,))
        if not rows:
            return ProtocolError(404, f"model {model_id} does not exist")
        model_row = ModelRow(**rows[0])
        if model_row.status != "successful":
            return ProtocolError(404, f"model {model_id} was not trained successfully")
        files = [FileRow(**r) for r in self._query(FILES, (model_id,))]
        columns = [r["name"] for r in self._query(COLUMNS, (model_id,))]
        try:
            stored = artifacts.stored(files)
            if stored.onnx is None and stored.format not in SERVED_FORMATS:
                return unservable(model_id, model_row.project, stored.format)
            return Served(Model.from_rows(model_row, files, columns))
        except PymlError as exc:
            return ProtocolError(500, f"model {model_id} cannot be loaded: {exc}")

    def _swap(self, project: str, served: Served | ProtocolError) -> None:
        old = self.live.get(project)
        self.live[project] = served  # requests in flight keep the object they hold
        if isinstance(served, Served) and self.on_swap is not None:
            self.on_swap(served)
        if isinstance(old, Served) and isinstance(served, Served) and old.id != served.id:
            log.info("project %s: model %s replaces model %s", project, served.id, old.id)

    def refresh(self, project: str) -> None:
        """Read a served project's live model again and swap it in if it changed."""
        with self._lock:
            try:
                row = self._project(project)
            except ProtocolError as exc:  # revoked, deleted: refused from now on
                self.live[project] = exc
                return
            current = self.live.get(project)
            if row["model_id"] is None:
                self._swap(
                    project, ProtocolError(404, f'project "{project}" has no deployed model')
                )
            elif not (isinstance(current, Served) and current.id == row["model_id"]):
                self._swap(project, self._served(row["model_id"]))

    # -- following deployments -------------------------------------------------------

    def _follow(self) -> None:
        delay = 0.1
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True, connect_timeout=5) as conn:
                    # A hot standby cannot LISTEN, and replays deployments without
                    # notifications: there the served projects are read again every
                    # STANDBY_POLL seconds instead (one query each).
                    row = conn.execute("SELECT pg_catalog.pg_is_in_recovery()").fetchone()
                    recheck = STANDBY_POLL if row and row[0] else RECHECK
                    if recheck == RECHECK:
                        conn.execute("LISTEN pyml_deploy")
                    self.connected = True
                    delay = 0.1
                    self._refresh_all()  # what was missed while away
                    last = time.monotonic()
                    while not self._stop.is_set():
                        for notify in conn.notifies(timeout=min(0.5, recheck)):
                            self._notified(notify.payload)
                        if time.monotonic() - last >= recheck:
                            self._refresh_all()
                            last = time.monotonic()
            except (psycopg.OperationalError, Unavailable) as exc:
                if self.connected:
                    log.warning("database connection lost, serving the loaded models: %s", exc)
                self.connected = False
                self._stop.wait(delay)
                delay = min(delay * 2, 5.0)
            except Exception:  # never let the thread die: log, back off, retry
                log.exception("unexpected error while following deployments")
                self.connected = False
                self._stop.wait(1.0)
        self.connected = False

    def _notified(self, payload: str) -> None:
        try:
            project_id = int(json.loads(payload)["project_id"])
        except (ValueError, KeyError, TypeError):
            return
        project = self.ids.get(project_id)
        if project is not None:
            self.refresh(project)

    def _refresh_all(self) -> None:
        for project in list(self.live):
            self.refresh(project)
        with self._lock:
            for model_id, served in list(self.pinned.items()):
                try:
                    self._project(served.project)
                except ProtocolError:
                    self.pinned.pop(model_id, None)
