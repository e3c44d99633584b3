"""Hot standbys: a standby serves every call that only reads, and refuses the others.

Predictions, explanations, feature importances, drift of a relation, lineage, model cards
and exports work on a standby as on the primary; its sessions follow the deployments
replayed there (:class:`pyml.server._board.Replayed`). A call that writes (train, deploy,
``predict_into``, prediction logging, streams, grants, monitors...) fails at once, before
any work, with SQLSTATE 25006 and a hint naming the primary, rather than with
PostgreSQL's error at its first write. The same check refuses such a call in a
read-only transaction on the primary.
"""

from __future__ import annotations

from pyml.errors import ReadOnlySqlTransaction
from pyml.server import store
from pyml.server._db import Db


def require_writable(db: Db, function: str) -> None:
    """25006 unless this transaction may write (``function``: the SQL name, for the message)."""
    on_standby, read_only = store.read_only(db)
    if on_standby or read_only:
        raise refusal(db, function, on_standby)


def refusal(db: Db, function: str, on_standby: bool | None = None) -> ReadOnlySqlTransaction:
    """The error for ``function``, which cannot write here."""
    if on_standby is None:
        on_standby = store.in_recovery(db)
    if not on_standby:
        return ReadOnlySqlTransaction(f"cannot run {function} in a read-only transaction")
    primary = store.primary_server(db)
    where = f" ({primary[0]}, port {primary[1]})" if primary else ""
    return ReadOnlySqlTransaction(
        f"cannot run {function} on a hot standby",
        hint=f"Run it on the primary server{where}. A standby serves predictions,"
        " explanations, drift, lineage and exports.",
    )
