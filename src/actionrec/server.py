"""A team's MLflow tracking server: ``mlflow server`` on a PostgreSQL backend store, with the
artifacts (models, reports) served by the server itself, all on 127.0.0.1.

Everything lives under one folder (default ``.mlflow-server/``, git-ignored):

    pgdata/            the PostgreSQL cluster (``initdb``; password authentication,
                       listening on 127.0.0.1 only)
    artifacts/         what ``--serve-artifacts`` stores (``--artifacts-destination``)
    credentials.json   the database user's generated password (mode 600)
    pgpass             the same password in libpq's password-file format (mode 600)
    mlflow.pid, *.log  the running server (the id of its process group) and the logs

The password reaches PostgreSQL's tools and the MLflow server only through the password
file (``PGPASSFILE``, read by libpq): it is on no command line, so ``ps`` shows it to
nobody. ``stop`` ends the server's whole process group, workers included, even when its
main process is gone; ``status`` asks the API itself, not only ``/health``.

``make mlflow-server`` / ``make mlflow-stop`` call :meth:`TeamServer.start` /
:meth:`TeamServer.stop` through ``actionrec mlflow-server``. PostgreSQL refuses to run
as root; as root its programs run as the ``postgres`` user that Debian's package makes.
Sources: PostgreSQL 15 docs (``initdb``, ``pg_ctl``, ``pg_dump``/``pg_restore``), MLflow
docs "MLflow Tracking Server" (``--backend-store-uri``, ``--serve-artifacts``).
"""

from __future__ import annotations

import glob
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from actionrec.errors import ActionrecError

HOST = "127.0.0.1"
DB_NAME = DB_USER = "mlflow"
#: The database of the same cluster that sweeps share (``actionrec sweep --storage``).
OPTUNA_DB = "optuna"


class ServerError(ActionrecError):
    """The tracking server or its database could not be started, stopped or backed up."""


def postgres_bin() -> Path:
    """The folder holding ``initdb``, ``pg_ctl`` and ``pg_dump``: on ``PATH``, else Debian's
    ``/usr/lib/postgresql/<version>/bin`` (the newest).

    Raises:
        ServerError: PostgreSQL is not installed (says how to install it).
    """
    found = shutil.which("pg_ctl")
    if found:
        return Path(os.path.realpath(found)).parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
                      key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    if versions:
        return Path(versions[-1]).parent
    raise ServerError("PostgreSQL is not installed: run `bash scripts/bootstrap.sh --server` "
                      "(Debian/Ubuntu: apt-get install postgresql)")


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` into a new file that only its owner can read (mode 600 from the start)."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs: it exists and is not a zombie (state ``Z`` in
    ``/proc/<pid>/stat``: exited, not yet reaped by its parent)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class TeamServer:
    """PostgreSQL + ``mlflow server`` under ``root``.

    Args:
        root: the state folder (created); must be reachable by the ``postgres`` user when
            running as root.
        port: the MLflow server's port (the tracking URI is ``http://127.0.0.1:<port>``).
        pg_port: PostgreSQL's port on 127.0.0.1.
    """

    def __init__(self, root: str | os.PathLike[str] = ".mlflow-server", port: int = 5000,
                 pg_port: int = 5433):
        self.root = Path(root).absolute()
        self.port, self.pg_port = port, pg_port
        self.pgdata = self.root / "pgdata"
        self.artifacts = self.root / "artifacts"
        self.pid_file = self.root / "mlflow.pid"
        self._proc: subprocess.Popen | None = None  # mlflow server, when started here
        self._pg_proc: subprocess.Popen | None = None  # the postmaster, when started here

    # ---------------------------------------------------------------- addresses
    @property
    def tracking_uri(self) -> str:
        """What ``MLFLOW_TRACKING_URI`` is set to for this server."""
        return f"http://{HOST}:{self.port}"

    def backend_uri(self) -> str:
        """The SQLAlchemy URI of the backend store. It holds no password: libpq reads that
        from :attr:`pgpass_file` (``PGPASSFILE`` in the server's environment)."""
        return f"postgresql://{DB_USER}@{HOST}:{self.pg_port}/{DB_NAME}"

    @property
    def optuna_storage(self) -> str:
        """The Optuna storage URL of this server's sweep database (SQLAlchemy, psycopg 3).
        No password either: a worker needs ``PGPASSFILE`` pointing at :attr:`pgpass_file`
        (or its own copy of it)."""
        return f"postgresql+psycopg://{DB_USER}@{HOST}:{self.pg_port}/{OPTUNA_DB}"

    @property
    def pgpass_file(self) -> Path:
        """libpq's password file for this server's database (``host:port:db:user:pw``)."""
        return self.root / "pgpass"

    def _password(self) -> str:
        return json.loads((self.root / "credentials.json").read_text())["password"]

    def _write_pgpass(self) -> None:
        _write_private(self.pgpass_file,
                       f"{HOST}:{self.pg_port}:*:{DB_USER}:{self._password()}\n")

    def _env(self) -> dict[str, str]:
        """The environment of every client of the database: the password file, never the
        password itself (``PGPASSWORD`` is dropped if the caller had one)."""
        env = {k: v for k, v in os.environ.items() if k != "PGPASSWORD"}
        if self.pgpass_file.exists():
            env["PGPASSFILE"] = str(self.pgpass_file)
        return env

    # ---------------------------------------------------------------- postgres
    def _as_postgres(self) -> list[str]:
        return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def _pg(self, program: str, *args: str, check: bool = True,
            as_owner: bool = True) -> subprocess.CompletedProcess:
        cmd = [*(self._as_postgres() if as_owner else []), str(postgres_bin() / program), *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=self._env())
        if check and proc.returncode != 0:
            raise ServerError(f"{program} failed ({proc.returncode}): "
                              f"{(proc.stderr or proc.stdout).strip()[-1500:]}")
        return proc

    def _initdb(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        creds = self.root / "credentials.json"
        if not creds.exists():
            _write_private(creds, json.dumps({"user": DB_USER,
                                              "password": secrets.token_urlsafe(24)}))
        self._write_pgpass()
        self.pgdata.mkdir(mode=0o700, exist_ok=True)
        pwfile = self.pgdata.parent / ".pwfile"
        _write_private(pwfile, self._password() + "\n")
        try:
            if os.geteuid() == 0:
                for path in (self.pgdata, pwfile):
                    shutil.chown(path, "postgres", "postgres")
            self._pg("initdb", "-D", str(self.pgdata), "-U", DB_USER, f"--pwfile={pwfile}",
                     "--auth=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8")
        except PermissionError as err:
            raise ServerError(f"cannot hand {self.pgdata} to the postgres user ({err})") from None
        finally:
            pwfile.unlink(missing_ok=True)

    def postgres_running(self) -> bool:
        return self.pgdata.is_dir() and self._pg("pg_ctl", "-D", str(self.pgdata), "status",
                                                 check=False).returncode == 0

    def _start_postgres(self) -> None:
        if not (self.pgdata / "PG_VERSION").exists():
            self._initdb()
        if not self.postgres_running():
            self._spawn_postgres()
        listed = self._pg("psql", "-h", HOST, "-p", str(self.pg_port), "-U", DB_USER, "-d",
                          "postgres", "-tAc", "SELECT datname FROM pg_database",
                          as_owner=False).stdout.split()
        for name in (DB_NAME, OPTUNA_DB):  # the runs; the sweeps
            if name not in listed:
                self._pg("createdb", "-h", HOST, "-p", str(self.pg_port), "-U", DB_USER, name,
                         as_owner=False)

    def _spawn_postgres(self, wait_s: float = 60) -> None:
        """Run the postmaster as a child of this process (not through ``pg_ctl start``,
        whose postmaster is a grandchild that nobody here can reap), in its own session,
        and wait until it accepts connections. :meth:`stop` reaps it, so a process that
        starts and stops the server leaves no ``[postgres] <defunct>`` behind.

        Raises:
            ServerError: it exited, or did not accept connections within ``wait_s`` s.
        """
        log_path = self.pgdata / "postgres.log"
        log = open(log_path, "a")  # noqa: SIM115 (the child keeps it)
        self._pg_proc = subprocess.Popen(
            [*self._as_postgres(), str(postgres_bin() / "postgres"), "-D", str(self.pgdata),
             "-p", str(self.pg_port), "-k", str(self.pgdata), "-c", f"listen_addresses={HOST}"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, env=self._env())
        log.close()
        deadline = time.monotonic() + wait_s
        while self._pg("pg_isready", "-q", "-h", HOST, "-p", str(self.pg_port),
                       check=False, as_owner=False).returncode != 0:
            if self._pg_proc.poll() is not None or time.monotonic() > deadline:
                tail = log_path.read_text(errors="replace")[-2000:]
                raise ServerError(f"PostgreSQL did not start on {HOST}:{self.pg_port}; "
                                  f"the end of {log_path}:\n{tail}")
            time.sleep(0.2)

    # ---------------------------------------------------------------- mlflow
    def mlflow_pid(self) -> int | None:
        """The server's process group id while any live process of the group runs (its
        main process, or workers left behind by a main process that died), else ``None``."""
        try:
            pid = int(self.pid_file.read_text())
        except (FileNotFoundError, ValueError):
            return None
        return pid if self.group_processes() else None

    def group_processes(self) -> list[int]:
        """The live process ids of the server's process group (Linux ``/proc``; a zombie,
        which has exited and waits for its parent to reap it, is not counted)."""
        try:
            pgid = int(self.pid_file.read_text())
        except (FileNotFoundError, ValueError):
            return []
        pids = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if os.getpgid(int(entry.name)) == pgid and _alive(int(entry.name)):
                        pids.append(int(entry.name))
                except (ProcessLookupError, PermissionError):
                    continue
        return sorted(pids)

    def api_status(self, timeout: float = 5) -> int | None:
        """The HTTP status of a real API call (search one experiment), ``None`` when
        nothing answers: ``/health`` can answer 200 while the API fails."""
        import requests

        try:
            return requests.get(f"{self.tracking_uri}/api/2.0/mlflow/experiments/search",
                                params={"max_results": 1}, timeout=timeout).status_code
        except requests.RequestException:
            return None

    def healthy(self, timeout: float = 2) -> bool:
        import requests

        try:
            return requests.get(f"{self.tracking_uri}/health", timeout=timeout).ok
        except requests.RequestException:
            return False

    def start(self, wait_s: float = 180) -> str:
        """Start PostgreSQL (creating the cluster and database the first time) and the
        MLflow server; return the tracking URI once ``/health`` answers.

        Raises:
            ServerError: a program failed, or the server did not come up (log tail shown).
        """
        if (self.root / "credentials.json").exists():
            self._write_pgpass()  # the port may differ from the last start's
        self._start_postgres()
        if self.mlflow_pid() is None:
            if self.healthy():
                raise ServerError(f"port {self.port} already serves another MLflow server; "
                                  "stop it or pick another port (--port)")
            self.artifacts.mkdir(parents=True, exist_ok=True)
            log = open(self.root / "mlflow.log", "a")  # noqa: SIM115 (the child keeps it)
            proc = subprocess.Popen(
                [sys.executable, "-m", "mlflow", "server", "--backend-store-uri",
                 self.backend_uri(), "--serve-artifacts", "--artifacts-destination",
                 str(self.artifacts), "--host", HOST, "--port", str(self.port),
                 "--workers", "2"],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                env={**self._env(), "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})
            log.close()
            self._proc = proc
            self.pid_file.write_text(str(proc.pid))
            deadline = time.monotonic() + wait_s
            while not self.healthy():
                if proc.poll() is not None or time.monotonic() > deadline:
                    self._kill_mlflow()
                    tail = (self.root / "mlflow.log").read_text()[-2000:]
                    raise ServerError(f"mlflow server did not come up on {self.tracking_uri}; "
                                      f"the end of {self.root / 'mlflow.log'}:\n{tail}")
                time.sleep(0.5)
        return self.tracking_uri

    def _kill_mlflow(self) -> None:
        pid = self.mlflow_pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return
        try:
            os.killpg(pid, signal.SIGTERM)
            for _ in range(60):
                if self._proc is not None and self._proc.poll() is not None:
                    break  # started here: reaped, so it leaves no zombie
                if not self.group_processes():  # only zombies left, if any: not ours to reap
                    break
                time.sleep(0.5)
            else:
                os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if self._proc is not None:
            self._proc.wait()
            self._proc = None
        self.pid_file.unlink(missing_ok=True)

    def stop(self) -> None:
        """Stop the MLflow server (its whole process group, workers included) and
        PostgreSQL; data is kept.

        Raises:
            ServerError: something still answers on the server's port afterwards (a
                server this folder did not start).
        """
        self._kill_mlflow()
        if self.postgres_running():
            self._pg("pg_ctl", "-D", str(self.pgdata), "-m", "fast", "-w", "stop")
        if self._pg_proc is not None:  # started by this process: reap it
            self._pg_proc.wait(timeout=60)
            self._pg_proc = None
        if self.api_status(timeout=2) is not None:
            raise ServerError(f"stopped the server of {self.root}, but {self.tracking_uri} "
                              "still answers: another process serves that port")

    def status(self) -> dict[str, object]:
        """What runs and answers, as found now: ``healthy`` only when all of it does: the
        main process lives (not a zombie), the API answers 200, ``/health`` does, and
        PostgreSQL runs. Workers that a dead main process left behind may still answer;
        that server is not healthy (nothing restarts a worker that dies)."""
        pid = self.mlflow_pid()
        main_alive = pid is not None and _alive(pid)
        api, health, postgres = self.api_status(), self.healthy(), self.postgres_running()
        return {"tracking_uri": self.tracking_uri, "optuna_storage": self.optuna_storage,
                "pgpass_file": str(self.pgpass_file), "mlflow_pid": pid,
                "main_process": main_alive, "processes": len(self.group_processes()),
                "api_status": api, "health": health, "postgres": postgres,
                "healthy": main_alive and api == 200 and health and postgres,
                "root": str(self.root)}

    # ---------------------------------------------------------------- backup
    def backup(self, out: str | os.PathLike[str]) -> Path:
        """``out/mlflow.pgdump`` (``pg_dump -Fc`` of the runs, metrics, registry) and
        ``out/artifacts/`` (a copy of the served artifacts). PostgreSQL must be running."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        self._pg("pg_dump", "-h", HOST, "-p", str(self.pg_port), "-U", DB_USER, "-Fc",
                 "-f", str(out / "mlflow.pgdump"), DB_NAME, as_owner=False)
        shutil.copytree(self.artifacts, out / "artifacts", dirs_exist_ok=True)
        return out

    def restore(self, backup: str | os.PathLike[str]) -> None:
        """Load a :meth:`backup` into this server's database (replacing what is there) and
        copy its artifacts back. Start PostgreSQL first (``start``)."""
        backup = Path(backup)
        if not (backup / "mlflow.pgdump").is_file():
            raise ServerError(f"{backup} holds no mlflow.pgdump (made by `backup`)")
        self._pg("pg_restore", "-h", HOST, "-p", str(self.pg_port), "-U", DB_USER, "-d",
                 DB_NAME, "--clean", "--if-exists", "--no-owner", str(backup / "mlflow.pgdump"),
                 as_owner=False)
        shutil.copytree(backup / "artifacts", self.artifacts, dirs_exist_ok=True)
