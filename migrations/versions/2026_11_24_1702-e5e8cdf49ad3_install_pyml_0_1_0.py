"""install pyml 0.1.0

Revision ID: e5e8cdf49ad3
Revises:
Create Date: 2026-11-24 17:02:06

Installs the extension with its frozen 0.1.0 script, exactly as a plain
``CREATE EXTENSION pyml CASCADE`` does. Its dependency plpython3u is created first
(if missing) because CREATE EXTENSION ... VERSION is run without CASCADE.

Downgrade drops the extension, and with it schema pyml and everything in it: the
registry tables and their rows (projects, snapshots, models, model files,
deployments) are lost. It refuses (DependentObjectsStillExist) while other objects
depend on the extension, e.g. tables that pyml.load_dataset or pyml.snapshot created
in schema pyml, or your views over pyml functions: drop those first. plpython3u is
left installed, since other code may use it.
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
