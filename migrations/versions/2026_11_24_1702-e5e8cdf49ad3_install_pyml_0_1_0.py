"""install pyml 0.1.0

Revision ID: e5e8cdf49ad3
Revises:
Create Date: 2026-11-24 17:02:06

Installs the extension with its frozen 0.1.0 script, exactly as a plain
``CREATE EXTENSION pyml CASCADE`` does. Its dependency plpython3u is created first
(if missing) because CREATE EXTENSION ... VERSION is run without CASCADE.

Downgrade drops the extension and every object it owns: its functions, types,
views and the registry tables WITH THEIR ROWS (projects, snapshots, models, model
files, deployments) are gone; upgrading again gives an empty registry. Back up first
(pg_dump keeps those rows). The drop refuses (DependentObjectsStillExist) while
objects of yours depend on the extension, e.g. a view over pyml.predict: drop those
first. It does not remove
- schema pyml: CREATE EXTENSION created it, but it is no member of the extension; it
  stays, with any tables pyml.load_dataset or pyml.snapshot made in it, and the next
  upgrade installs into it;
- plpython3u, which other code may use.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "e5e8cdf49ad3"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS plpython3u")
    op.execute("CREATE EXTENSION pyml VERSION '0.1.0'")


def downgrade() -> None:
    op.execute("DROP EXTENSION pyml")
