"""The embedded local PostgreSQL server behind ``pyml up`` / ``down`` / ``status``.

One cluster per checkout (state in ``<checkout>/.pyml``, or ``$PYML_HOME``), on a
port derived from the checkout's path, so two checkouts never clash. PostgreSQL
refuses to run as root, so when invoked as root the server runs as an
unprivileged user (``postgres`` when it exists, else a ``pyml`` system user).
The server's PL/Python finds the package through the setting ``pyml.venv``,
which points at the virtual environment this command runs from.

pg_cron (when installed) keeps its jobs in database ``postgres``, its own default,
never in database ``pyml``: a dump of ``pyml`` then holds nothing of pg_cron's and
restores anywhere. One job, ``pyml-monitors``, runs the monitoring rounds in ``pyml``.
"""

from __future__ import annotations

import filecmp
import functools
import os
import pwd
import shutil
import socket
import stat
import subprocess
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

PG_BIN = Path(os.environ.get("PYML_PG_BIN", "/usr/lib/postgresql/15/bin"))
DATABASE = "pyml"
SUPERUSER = "postgres"
# pg_cron: the database that holds its jobs (cron.database_name, pg_cron's default), and
# the one job pyml needs there: every minute, the due monitoring rounds of database pyml.
CRON_DATABASE = "postgres"
CRON_JOB = "pyml-monitors"
CRON_SCHEDULE = "* * * * *"
CRON_COMMAND = "SELECT * FROM pyml.run_monitors()"
CRON_SETTINGS = {
    "cron.database_name": f"'{CRON_DATABASE}'",
    "cron.use_background_workers": "on",
    "max_worker_processes": "16",
    "cron.log_min_messages": "warning",
}
# The Debian package that provides plpython3.so for this server.
PLPYTHON_PACKAGE = "postgresql-plpython3-15"


class ClusterError(RuntimeError):
    """The local server could not be created, started or reached."""


def checkout_root() -> Path:
    """The source tree this package runs from (holds ``extension/``)."""
    return Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Cluster:
    """A local PostgreSQL cluster owned by an unprivileged user."""

    root: Path
    state: Path
    venv: Path

    @classmethod
    def for_checkout(cls, root: Path | None = None) -> Cluster:
        root = (root or checkout_root()).resolve()
        state = Path(os.environ.get("PYML_HOME", root / ".pyml")).resolve()
        venv = Path(os.environ.get("PYML_VENV", sys.prefix)).resolve()
        return cls(root=root, state=state, venv=venv)

    # -- paths and settings -------------------------------------------------

    @property
    def data(self) -> Path:
        return self.state / "data"

    @property
    def log(self) -> Path:
        return self.state / "server.log"

    @property
    def socket_dir(self) -> Path:
        return self.state / "run"

    @property
    def port(self) -> int:
        conf = self.data / "postgresql.auto.conf"
        if conf.exists():
            for line in conf.read_text().splitlines():
                key, _, value = line.partition("=")
                if key.strip() == "port":
                    return int(value.strip().strip("'"))
        return _free_port(_preferred_port(self.root))

    def uri(self, dbname: str = DATABASE) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{dbname}"

    @property
    def user(self) -> str:
        if os.geteuid() != 0:
            return pwd.getpwuid(os.geteuid()).pw_name
        return _ensure_system_user()

    # -- lifecycle ----------------------------------------------------------

    def is_initialized(self) -> bool:
        return (self.data / "PG_VERSION").exists()

    def is_running(self) -> bool:
        if not self.is_initialized():
            return False
        proc = self._pg_ctl("status", check=False, capture=True)
        return proc.returncode == 0

    def up(self) -> str:
        """Create (first time) and start the server, install the extension; return the URI."""
        _check_plpython()
        if sys.prefix == sys.base_prefix and "PYML_VENV" not in os.environ:
            raise ClusterError(
                "pyml must run from its virtual environment (run 'make setup' first)"
            )
        install_extension_files(self.root / "extension")
        user = self.user
        if not self.is_initialized():
            self._init(user)
        self._grant_traverse(user)
        # A cluster made before pg_cron, or by an earlier pyml up that kept pg_cron in pyml;
        # or before wal_level = logical (both are evaluated: each may rewrite the settings).
        if (self._enable_cron() | self._enable_logical()) and self.is_running():
            self._pg_ctl("restart", "-w", "-t", "60", "-m", "fast", "-l", str(self.log))
        if not self.is_running():
            self._pg_ctl("start", "-w", "-t", "60", "-l", str(self.log))
        self._install_extension()
        self._install_cron()
        return self.uri()

    def down(self) -> bool:
        """Stop the server; return whether it was running."""
        if not self.is_running():
            return False
        self._pg_ctl("stop", "-w", "-m", "fast")
        return True

    def status(self) -> dict[str, object]:
        return {
            "running": self.is_running(),
            "initialized": self.is_initialized(),
            "data_directory": str(self.data),
            "log": str(self.log),
            "venv": str(self.venv),
            "uri": self.uri(),
        }

    # -- internals ----------------------------------------------------------

    def _as_user(self, argv: list[str]) -> list[str]:
        if os.geteuid() == 0:
            return ["runuser", "-u", self.user, "--", *argv]
        return argv

    def _pg_ctl(
        self, *args: str, check: bool = True, capture: bool = False
    ) -> subprocess.CompletedProcess[str]:
        argv = self._as_user([str(PG_BIN / "pg_ctl"), "-D", str(self.data), *args])
        proc = subprocess.run(argv, text=True, capture_output=True)
        if check and proc.returncode != 0:
            tail = self.log.read_text()[-2000:] if self.log.exists() else ""
            raise ClusterError(f"pg_ctl {args[0]} failed:\n{proc.stdout}{proc.stderr}\n{tail}")
        if not capture and proc.stdout.strip():
            print(proc.stdout.strip(), file=sys.stderr)
        return proc

    def _init(self, user: str) -> None:
        uid = pwd.getpwnam(user).pw_uid
        gid = pwd.getpwnam(user).pw_gid
        self.state.mkdir(parents=True, exist_ok=True)
        for path in (self.data, self.socket_dir):
            path.mkdir(mode=0o700, exist_ok=True)
            os.chown(path, uid, gid)
        self.log.touch()
        os.chown(self.log, uid, gid)
        self._grant_traverse(user)
        subprocess.run(
            self._as_user(
                [
                    str(PG_BIN / "initdb"),
                    "-D",
                    str(self.data),
                    "-U",
                    SUPERUSER,
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                ]
            ),
            check=True,
            capture_output=True,
            text=True,
        )
        port = _free_port(_preferred_port(self.root))
        settings = {
            "port": str(port),
            "listen_addresses": "'127.0.0.1'",
            # Unix sockets are limited to 107 bytes of path; use TCP only when the path is long.
            "unix_socket_directories": (
                f"'{self.socket_dir}'" if len(str(self.socket_dir)) < 90 else "''"
            ),
            "pyml.venv": f"'{self.venv}'",
            # Load PL/Python's library once in the postmaster rather than in each session.
            "shared_preload_libraries": "'plpython3'",
            "shared_buffers": "'256MB'",
            "max_connections": "200",  # benchmarks open 100 idle listeners
            "log_min_messages": "warning",
        }
        with open(self.data / "postgresql.auto.conf", "a") as conf:
            for key, value in settings.items():
                conf.write(f"{key} = {value}\n")
        self._enable_cron()
        self._enable_logical()

    def _enable_logical(self) -> bool:
        """``wal_level = logical``: the local cluster can publish the registry (logical
        replication, docs/replication.md). True when the setting was added (the server must
        restart); a wal_level already written (by this or by the user) is left alone."""
        conf = self.data / "postgresql.auto.conf"
        lines = conf.read_text().splitlines()
        if any(_setting(line)[0] == "wal_level" for line in lines):
            return False
        conf.write_text("\n".join([*lines, "wal_level = logical"]) + "\n")
        return True

    def _enable_cron(self) -> bool:
        """Preload pg_cron (when installed) with its jobs in database postgres; True when
        the settings changed (the server must restart). Rewrites ``cron.database_name =
        'pyml'``, which an earlier ``pyml up`` wrote, and adds pg_cron to a cluster made
        before it; leaves the file alone once the setting names postgres."""
        if not _has_library("pg_cron"):
            return False
        conf = self.data / "postgresql.auto.conf"
        lines = conf.read_text().splitlines()
        settings = {key: value for key, value in map(_setting, lines) if key}
        if settings.get("cron.database_name") == CRON_SETTINGS["cron.database_name"]:
            return False
        preload = [
            name.strip()
            for name in settings.get("shared_preload_libraries", "").strip("'").split(",")
        ]
        wanted = {
            "shared_preload_libraries": "'{}'".format(
                ",".join(
                    [name for name in preload if name]
                    + [name for name in ("plpython3", "pg_cron") if name not in preload]
                )
            ),
            **CRON_SETTINGS,
        }
        kept = [line for line in lines if _setting(line)[0] not in wanted]
        kept += [f"{key} = {value}" for key, value in wanted.items()]
        conf.write_text("\n".join(kept) + "\n")
        return True

    def _grant_traverse(self, user: str) -> None:
        """Let the server user reach the data directory and read the venv and the package."""
        for target in (self.state, self.venv, self.root):
            for directory in [*reversed(target.parents), target]:
                _allow_traverse(directory, user)

    def _install_extension(self) -> None:
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.uri("postgres"), autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)
            ).fetchone()
            if not exists:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
        with psycopg.connect(self.uri(), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pyml CASCADE")
            row = conn.execute(
                "SELECT extversion, default_version FROM pg_extension"
                " JOIN pg_available_extensions ON name = extname WHERE extname = 'pyml'"
            ).fetchone()
            if row and row[0] != row[1]:
                conn.execute("ALTER EXTENSION pyml UPDATE")

    def _install_cron(self) -> None:
        """When pg_cron is preloaded: the extension in database postgres, and the job that
        runs the monitoring rounds in database pyml (made once; a job of that name whose
        command or database differ is corrected, its schedule left as it is).

        Moves pg_cron out of database pyml, where an earlier ``pyml up`` put it: the jobs
        that are not pyml's are copied to postgres as they are (their run history is not),
        the pyml-monitors jobs give way to the one job, then the extension is dropped."""
        import psycopg

        with psycopg.connect(self.uri(CRON_DATABASE), autocommit=True) as cron:
            if not cron.execute(  # pg_cron is not installed
                "SELECT 1 FROM pg_settings WHERE name = 'cron.database_name'"
            ).fetchone():
                return
            cron.execute("CREATE EXTENSION IF NOT EXISTS pg_cron")
            # One transaction in pyml: if the drop fails (an object of the user's depends on
            # the extension), nothing is copied either.
            with psycopg.connect(self.uri()) as pyml:
                if pyml.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_cron'").fetchone():
                    jobs = pyml.execute(
                        "SELECT schedule, command, nodename, nodeport, database, username,"
                        " active, jobname FROM cron.job"
                        " WHERE jobname IS DISTINCT FROM %s ORDER BY jobid",
                        (CRON_JOB,),
                    ).fetchall()
                    try:
                        pyml.execute("DROP EXTENSION pg_cron")
                    except psycopg.errors.DependentObjectsStillExist as exc:
                        raise ClusterError(
                            "cannot move pg_cron out of database pyml:"
                            f" {exc.diag.message_detail} (drop it, then run 'pyml up'"
                            " again; until then the jobs kept in pyml do not run)"
                        ) from exc
                    with cron.transaction():
                        for kept in jobs:
                            cron.execute(
                                "INSERT INTO cron.job (schedule, command, nodename, nodeport,"
                                " database, username, active, jobname)"
                                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                                kept,
                            )
            job = cron.execute(
                "SELECT jobid, command, database FROM cron.job"
                " WHERE jobname = %s AND username = current_user",
                (CRON_JOB,),
            ).fetchone()
            if job is None:
                cron.execute(
                    "SELECT cron.schedule_in_database(%s, %s, %s, %s)",
                    (CRON_JOB, CRON_SCHEDULE, CRON_COMMAND, DATABASE),
                )
            elif (job[1], job[2]) != (CRON_COMMAND, DATABASE):
                # (pg_cron 1.4's schedule_in_database updates the command of a job of the
                # same name, not its database.) Its schedule and active flag stay.
                cron.execute(
                    "SELECT cron.alter_job(%s, command => %s, database => %s)",
                    (job[0], CRON_COMMAND, DATABASE),
                )


@dataclass(frozen=True)
class Standby:
    """A hot standby of a local :class:`Cluster`, for tests and benchmarks of read scaling:
    a ``pg_basebackup -R`` of the running primary in ``<state>/standby/<name>``, on a port
    of its own, streaming from the primary (and following it until stopped)."""

    primary: Cluster
    name: str = "standby"

    @property
    def data(self) -> Path:
        return self.primary.state / "standby" / self.name

    @property
    def log(self) -> Path:
        return self.data.parent / f"{self.name}.log"

    @property
    def port(self) -> int:
        conf = self.data / "postgresql.auto.conf"
        port = None
        if conf.exists():  # the last "port" line wins (the primary's is copied first)
            for key, value in map(_setting, conf.read_text().splitlines()):
                if key == "port":
                    port = int(value.strip("'"))
        if port is None:
            raise ClusterError(f"standby {self.name!r} was never started")
        return port

    def uri(self, dbname: str = DATABASE) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{dbname}"

    def start(self) -> str:
        """Make the standby (first time: a base backup of the running primary) and start it;
        return its URI once it accepts read-only connections."""
        if not self.primary.is_running():
            raise ClusterError("the primary is not running (pyml up)")
        user = self.primary.user
        if not (self.data / "PG_VERSION").exists():
            self._base_backup(user)
        if not self._running():
            self._pg_ctl("start", "-w", "-t", "120", "-l", str(self.log))
        return self.uri()

    def stop(self) -> None:
        if self._running():
            self._pg_ctl("stop", "-w", "-m", "fast")

    def remove(self) -> None:
        """Stop the standby and delete its directory."""
        self.stop()
        shutil.rmtree(self.data, ignore_errors=True)
        self.log.unlink(missing_ok=True)

    def _base_backup(self, user: str) -> None:
        entry = pwd.getpwnam(user)
        self.data.parent.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            os.chown(self.data.parent, entry.pw_uid, entry.pw_gid)
        shutil.rmtree(self.data, ignore_errors=True)
        proc = subprocess.run(
            self.primary._as_user(
                [
                    str(PG_BIN / "pg_basebackup"),
                    *("-h", "127.0.0.1", "-p", str(self.primary.port), "-U", SUPERUSER),
                    *("-D", str(self.data), "-R", "-X", "stream", "-c", "fast"),
                ]
            ),
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            raise ClusterError(f"pg_basebackup failed:\n{proc.stdout}{proc.stderr}")
        socket_dir = self.data / "run"
        socket_dir.mkdir(mode=0o700, exist_ok=True)
        if os.geteuid() == 0:
            os.chown(socket_dir, entry.pw_uid, entry.pw_gid)
        port = _free_port(self.primary.port + 1)
        with open(self.data / "postgresql.auto.conf", "a") as conf:
            conf.write(f"port = {port}\n")
            conf.write(
                "unix_socket_directories = "
                + (f"'{socket_dir}'\n" if len(str(socket_dir)) < 90 else "''\n")
            )
        self.log.touch()
        if os.geteuid() == 0:
            os.chown(self.log, entry.pw_uid, entry.pw_gid)

    def _running(self) -> bool:
        if not (self.data / "PG_VERSION").exists():
            return False
        return self._pg_ctl("status", check=False).returncode == 0

    def _pg_ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = self.primary._as_user([str(PG_BIN / "pg_ctl"), "-D", str(self.data), *args])
        proc = subprocess.run(argv, text=True, capture_output=True)
        if check and proc.returncode != 0:
            tail = self.log.read_text()[-2000:] if self.log.exists() else ""
            raise ClusterError(f"pg_ctl {args[0]} failed:\n{proc.stdout}{proc.stderr}\n{tail}")
        return proc


def install_extension_files(source: Path) -> None:
    """Copy the control file and scripts into the server's extension directory."""
    sharedir = subprocess.run(
        [str(PG_BIN / "pg_config"), "--sharedir"], capture_output=True, text=True, check=True
    ).stdout.strip()
    target = Path(sharedir) / "extension"
    files = sorted(source.glob("pyml.control")) + sorted(source.glob("pyml--*.sql"))
    if not files:
        raise ClusterError(f"no extension files in {source} (run 'make build')")
    for path in files:
        dest = target / path.name
        if dest.exists() and filecmp.cmp(path, dest, shallow=False):
            continue
        try:
            shutil.copyfile(path, dest)
            os.chmod(dest, 0o644)
        except PermissionError as exc:
            raise ClusterError(
                f"cannot write {dest}: run 'make install' as root (or with sudo)"
            ) from exc


@functools.cache
def _pkglibdir() -> Path:
    return Path(
        subprocess.run(
            [str(PG_BIN / "pg_config"), "--pkglibdir"], capture_output=True, text=True, check=True
        ).stdout.strip()
    )


def _has_library(name: str) -> bool:
    """Whether the server has the shared library ``name`` (plpython3, pg_cron)."""
    return (_pkglibdir() / f"{name}.so").exists()


def _setting(line: str) -> tuple[str, str]:
    """``(key, value)`` of a ``key = value`` line of postgresql.auto.conf (value as
    written, quotes included); ``("", "")`` for a comment or a blank line."""
    if line.lstrip().startswith("#") or "=" not in line:
        return "", ""
    key, _, value = line.partition("=")
    return key.strip(), value.strip()


def _check_plpython() -> None:
    if not _has_library("plpython3"):
        raise ClusterError(
            f"PL/Python is not installed: apt-get install {PLPYTHON_PACKAGE} (or run 'make setup')"
        )


def _preferred_port(root: Path) -> int:
    return 20000 + zlib.crc32(str(root).encode()) % 20000


def _free_port(start: int) -> int:
    for port in range(start, start + 200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise ClusterError(f"no free TCP port in {start}..{start + 199}")


def _ensure_system_user() -> str:
    for name in ("postgres", "pyml"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "pyml"],
        check=True,
    )
    return "pyml"


def _allow_traverse(directory: Path, user: str) -> None:
    entry = pwd.getpwnam(user)
    st = directory.stat()
    if st.st_mode & stat.S_IXOTH:
        return
    if st.st_uid == entry.pw_uid and st.st_mode & stat.S_IXUSR:
        return
    if st.st_gid == entry.pw_gid and st.st_mode & stat.S_IXGRP:
        return
    if os.geteuid() != 0:
        raise ClusterError(f"user {user!r} cannot reach {directory}")
    # Grant traversal to the server user only, rather than widening the mode.
    if shutil.which("setfacl"):
        subprocess.run(["setfacl", "-m", f"u:{user}:x", str(directory)], check=True)
    else:
        os.chmod(directory, st.st_mode | stat.S_IXOTH)
