#!/usr/bin/env python3
"""The stack's PostgreSQL server, as a host process (unix socket only, no TCP at all) or in a container (TCP on the
internal `data` network too). Standard library only.

    postgres_service.py setup   find server binaries; install the pgserver wheel into stack/db/.venv only when
                                this machine has no PostgreSQL of its own
    postgres_service.py run     initialise the cluster on first start, then exec postgres in the foreground
    postgres_service.py check   pg_isready over the unix socket (exec'd: the check is one process); exit 0 when
                                it accepts connections, else 1 or 2

Settings (environment; compose.yaml sets them):
    POSTGRES_USER, POSTGRES_PASSWORD, POSTGRES_DB   the role (the cluster's superuser, as in the official postgres
                                                    image) and database created on first start. The password
                                                    goes to initdb in a temporary 0600 file, never in argv.
                                                    Each may come from the file its ``_FILE`` variable names
                                                    instead (a Docker secret), as in the official image.
    PG_DATA_DIR      the cluster (default $UNISTACK_VOLUMES_DIR/db/pgdata)
    PG_SOCKET_DIR    where the socket .s.PGSQL.5432 lives (default $UNISTACK_RUN_DIR/db); clients use host=<it>
    PG_LISTEN_ADDRESSES  TCP addresses to listen on (postgres' listen_addresses, port 5432): empty by default, so
                     no TCP at all (host processes); '*' in the container, whose only network is the internal one
    PG_HBA_ADDRESSES the clients allowed over TCP when it listens there, space-separated pg_hba addresses
                     (default samenet: the server's own subnets, i.e. the container's network), password logins
                     (scram-sha-256) only; pg_hba.conf is rewritten from these on every start
    POSTGRES_BINARIES  auto (default: the system's, else pgserver), system, or pgserver
    POSTGRES_BINDIR    use exactly this folder of server binaries
    POSTGRES_OS_USER   the account that runs the server when started as root (default: postgres if it exists,
                       else unistack-db, created with useradd --system)

PostgreSQL refuses to run as root. Started as root (containers, CI), this script runs initdb and postgres as the
account above, gives it the data and socket folders, and lets it traverse the 0700 run folder (a POSIX ACL entry
for that one account, or o+x when the file system has no ACLs). Root clients connect regardless of modes.

Shutdown: compose.yaml sets stop_signal SIGINT, which postgres handles as a fast shutdown (SIGTERM would be a
"smart" shutdown that waits for every client to disconnect, past the grace period).
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import stat
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

HERE = Path(__file__).resolve().parent
VENV = HERE / ".venv"
REQUIREMENTS = HERE / "requirements-pgserver.txt"
TOOLS = HERE.parent / "tools"
PORT = "5432"  # with listen_addresses='' it only names the socket file
FALLBACK_ACCOUNT = "unistack-db"
NEEDED = ("postgres", "initdb", "pg_isready")
STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGQUIT}  # fast, smart, immediate shutdown


def say(message: str) -> None:
    print(f"[db] {message}", flush=True)


def die(message: str, code: int = 1) -> NoReturn:
    print(f"[db] error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(code)


# --------------------------------------------------------------------------------------- finding binaries


@dataclass(frozen=True)
class Binaries:
    bindir: Path
    origin: str  # "system", "pgserver" or "POSTGRES_BINDIR"

    def tool(self, name: str) -> str:
        return str(self.bindir / name)

    def major(self) -> str:
        """'15' for 'postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)'."""
        out = subprocess.run([self.tool("postgres"), "--version"], capture_output=True, text=True)
        match = re.search(r"(\d+)(?:\.\d+)?", out.stdout)
        return match.group(1) if match else "?"

    def version(self) -> str:
        out = subprocess.run([self.tool("postgres"), "--version"], capture_output=True, text=True)
        return out.stdout.strip().replace("postgres (PostgreSQL) ", "") or "unknown version"


def _complete(bindir: Path) -> bool:
    return all(os.access(bindir / name, os.X_OK) for name in NEEDED)


def _version_key(path: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", path)) or (0,)


def system_bindirs() -> list[Path]:
    """Folders of server binaries this machine has, best first (pg_config's, then the newest Debian one, ...)."""
    found: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
        if out.returncode == 0 and out.stdout.strip():
            found.append(Path(out.stdout.strip()))
    for pattern in (
        "/usr/lib/postgresql/*/bin",
        "/usr/pgsql-*/bin",
        "/opt/homebrew/opt/postgresql@*/bin",
        "/usr/local/opt/postgresql@*/bin",
    ):
        found += sorted(Path("/").glob(pattern.lstrip("/")), key=lambda p: _version_key(str(p)), reverse=True)
    postgres = shutil.which("postgres")
    if postgres:
        found.append(Path(postgres).resolve().parent)
    unique = list(dict.fromkeys(p.resolve() for p in found if p.is_dir()))
    return [p for p in unique if _complete(p)]


def pgserver_bindirs() -> list[Path]:
    """pgserver (PyPI) keeps a whole PostgreSQL in site-packages/pgserver/pginstall/{bin,lib,share}."""
    paths = sorted(VENV.glob("lib/python*/site-packages/pgserver/pginstall/bin"))
    return [p for p in paths if _complete(p)]


def binaries_mode() -> str:
    mode = os.environ.get("POSTGRES_BINARIES", "auto")
    if mode not in ("auto", "system", "pgserver"):
        die(f"POSTGRES_BINARIES={mode!r}: use auto, system or pgserver", 2)
    return mode


def candidates() -> list[Binaries]:
    override = os.environ.get("POSTGRES_BINDIR")
    if override:
        if not _complete(Path(override)):
            die(f"POSTGRES_BINDIR={override} lacks one of {', '.join(NEEDED)}", 2)
        return [Binaries(Path(override), "POSTGRES_BINDIR")]
    mode = binaries_mode()
    found = []
    if mode in ("auto", "system"):
        found += [Binaries(p, "system") for p in system_bindirs()]
    if mode in ("auto", "pgserver"):
        found += [Binaries(p, "pgserver") for p in pgserver_bindirs()]
    return found


def choose(data_dir: Path | None) -> Binaries:
    """The first candidate; with an existing cluster, the first whose major version matches it."""
    found = candidates()
    if not found:
        die(
            "no PostgreSQL server binaries found (system or pgserver); the setup step installs pgserver when "
            "the machine has none: run `unistack up` again and read `unistack logs db`"
        )
    version_file = data_dir / "PG_VERSION" if data_dir else None
    if version_file is None or not version_file.is_file():
        return found[0]
    wanted = version_file.read_text().strip()
    for binaries in found:
        if binaries.major() == wanted:
            return binaries
    have = ", ".join(f"{b.major()} ({b.bindir})" for b in found)
    die(
        f"the cluster in {data_dir} was made by PostgreSQL {wanted}, but only {have} is available. Install "
        f"PostgreSQL {wanted}, set POSTGRES_BINDIR, or start afresh with `unistack down -v` (deletes the data)"
    )


# --------------------------------------------------------------------------------------- the account


@dataclass(frozen=True)
class Account:
    name: str
    uid: int
    gid: int


def server_account() -> Account | None:
    """None when not root (the server runs as us); else the unprivileged account that will run it."""
    if os.geteuid() != 0:
        return None
    wanted = os.environ.get("POSTGRES_OS_USER")
    for name in [wanted] if wanted else ["postgres", FALLBACK_ACCOUNT]:
        try:
            entry = pwd.getpwnam(name)
            return Account(entry.pw_name, entry.pw_uid, entry.pw_gid)
        except KeyError:
            continue
    if wanted:
        die(f"POSTGRES_OS_USER={wanted} does not exist", 2)
    say(
        f"running as root and this machine has no 'postgres' account: creating the system account "
        f"'{FALLBACK_ACCOUNT}' (useradd --system) to run PostgreSQL, which refuses to run as root"
    )
    command = [
        "useradd",
        "--system",
        "--user-group",
        "--no-create-home",
        "--home-dir",
        "/nonexistent",
        "--shell",
        "/usr/sbin/nologin",
        "--comment",
        "unistack PostgreSQL",
        FALLBACK_ACCOUNT,
    ]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode not in (0, 9):  # 9: created meanwhile by a racing start
        die(
            f"useradd failed ({result.returncode}): {result.stderr.strip()}; create an account for PostgreSQL "
            "and name it in POSTGRES_OS_USER"
        )
    entry = pwd.getpwnam(FALLBACK_ACCOUNT)
    return Account(entry.pw_name, entry.pw_uid, entry.pw_gid)


def run_as(
    account: Account | None, argv: list[str], *, cwd: Path | None = None, stdin: str | None = None, quiet: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run a command as the account (as ourselves when we are not root); output captured unless quiet=False."""
    return subprocess.run(
        argv,
        cwd=cwd,
        input=stdin,
        capture_output=quiet,
        text=True,
        user=account.uid if account else None,
        group=account.gid if account else None,
        extra_groups=[] if account else None,
    )


def can_reach(path: Path, account: Account | None) -> bool:
    if account is None:
        return os.access(path, os.X_OK)
    return run_as(account, ["test", "-x", str(path)]).returncode == 0


def give(path: Path, account: Account | None) -> None:
    """A 0700 folder that belongs to the account (created if missing)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if account is not None:
        os.chown(path, account.uid, account.gid)
    path.chmod(0o700)


# Linux's xattr form of a POSIX access ACL (what setfacl writes): a version header, then (tag, perm, id) entries.
_ACL_VERSION, _UNDEFINED = 2, 0xFFFFFFFF
_USER_OBJ, _USER, _GROUP_OBJ, _MASK, _OTHER = 0x01, 0x02, 0x04, 0x10, 0x20


def let_traverse(folder: Path, account: Account | None) -> None:
    """Let the account pass through ``folder`` (unistack's 0700 run folder) to reach its socket folder.

    Adds one ACL entry (user:<account>:--x) so nobody else gains anything; on file systems without ACLs, falls
    back to o+x (others may traverse, not list; every socket inside keeps its own permissions). unistack makes
    the run folder 0700 again on `up` only when it lets others read or write in it, so this traversal right
    stays (and every start of the db service grants it again anyway).
    """
    if account is None or can_reach(folder, account):
        return
    mode = stat.S_IMODE(folder.stat().st_mode)
    entries = [
        (_USER_OBJ, (mode >> 6) & 7, _UNDEFINED),
        (_USER, 1, account.uid),
        (_GROUP_OBJ, (mode >> 3) & 7, _UNDEFINED),
        (_MASK, ((mode >> 3) & 7) | 1, _UNDEFINED),
        (_OTHER, mode & 7, _UNDEFINED),
    ]
    blob = struct.pack("<I", _ACL_VERSION) + b"".join(struct.pack("<HHI", *e) for e in entries)
    try:
        os.setxattr(folder, "system.posix_acl_access", blob)
    except OSError as exc:
        say(f"no ACLs on this file system ({exc.strerror}); making {folder} traversable by others (o+x)")
        folder.chmod(mode | stat.S_IXOTH)
    if not can_reach(folder, account):
        die(f"the account {account.name} still cannot reach {folder}")


# --------------------------------------------------------------------------------------- settings


def settings() -> tuple[Path, Path]:
    def folder(name: str, base: str, sub: str) -> Path:
        value = os.environ.get(name)
        if value:
            return Path(value).absolute()
        root = os.environ.get(base)
        if not root:
            die(f"set {name} (or run under unistack, which sets {base})", 2)
        return Path(root) / sub

    return folder("PG_DATA_DIR", "UNISTACK_VOLUMES_DIR", "db/pgdata"), folder("PG_SOCKET_DIR", "UNISTACK_RUN_DIR", "db")


def listen_addresses() -> str:
    """PG_LISTEN_ADDRESSES as postgres takes it ('' = no TCP); spaces are allowed after the commas."""
    return ",".join(part.strip() for part in os.environ.get("PG_LISTEN_ADDRESSES", "").split(",") if part.strip())


def hba_text(tcp: bool) -> str:
    """pg_hba.conf: password logins over the unix socket; over TCP only when listening there, from PG_HBA_ADDRESSES."""
    lines = [
        "# written by stack/db/postgres_service.py on every start: set PG_LISTEN_ADDRESSES / PG_HBA_ADDRESSES instead",
        "# password logins (scram-sha-256) over the unix socket, and over TCP only from the addresses below.",
        "# TYPE  DATABASE  USER  ADDRESS  METHOD",
        "local   all       all            scram-sha-256",
    ]
    if tcp:
        for address in os.environ.get("PG_HBA_ADDRESSES", "samenet").split() or ["samenet"]:
            if not re.fullmatch(r"[A-Za-z0-9.:/_-]+", address):
                die(f"PG_HBA_ADDRESSES: {address!r} is not a pg_hba address (samenet, an IP/mask, a host name)", 2)
            lines.append(f"host    all       all   {address}  scram-sha-256")
    else:
        lines.append("# no TCP: listen_addresses is empty")
    return "\n".join(lines) + "\n"


def write_hba(data: Path, account: Account | None, tcp: bool) -> None:
    path = data / "pg_hba.conf"
    text = hba_text(tcp)
    if path.is_file() and path.read_text() == text:
        return
    scratch = path.with_name(".pg_hba.conf.tmp")
    scratch.write_text(text)
    scratch.chmod(0o600)
    if account is not None:
        os.chown(scratch, account.uid, account.gid)
    scratch.replace(path)


def setting(name: str, default: str = "") -> str:
    """``name`` from the environment, or, as the official image reads it, from the file ``<name>_FILE`` names (its
    content without the trailing newlines: a Docker secret); both set is an error."""
    value, path = os.environ.get(name), os.environ.get(f"{name}_FILE")
    if value and path:
        die(f"both {name} and {name}_FILE are set; keep one", 2)
    if path:
        try:
            return Path(path).read_text().rstrip("\n")
        except OSError as exc:
            die(f"{name}_FILE={path}: cannot read it ({exc.strerror or exc})", 2)
    return value or default


def credentials() -> tuple[str, str, str]:
    user, password, db = (setting(k) for k in ("POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"))
    if not user or not password:
        die("POSTGRES_USER and POSTGRES_PASSWORD must be set (the cluster only accepts password logins)", 2)
    return user, password, db or user


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# --------------------------------------------------------------------------------------- subcommands


def setup() -> int:
    """Runs before every start: cheap when binaries exist; installs pgserver only on a machine without any."""
    mode = binaries_mode()
    if os.environ.get("POSTGRES_BINDIR"):
        found = candidates()[0]
        say(f"using POSTGRES_BINDIR {found.bindir} ({found.version()})")
        return 0
    if mode in ("auto", "system"):
        system = system_bindirs()
        if system:
            say(f"using the system's PostgreSQL {Binaries(system[0], 'system').version()} in {system[0]}")
            return 0
        if mode == "system":
            die("POSTGRES_BINARIES=system, but this machine has no PostgreSQL server binaries")
        say("no PostgreSQL server on this machine: using the pgserver wheel from PyPI in stack/db/.venv")
    result = subprocess.run([sys.executable, str(TOOLS / "ensure_venv.py"), str(VENV), str(REQUIREMENTS)])
    if result.returncode != 0:
        return result.returncode
    found_pgserver = pgserver_bindirs()
    if not found_pgserver:
        die(f"pgserver is installed in {VENV} but has no pginstall/bin with {', '.join(NEEDED)}")
    say(f"using pgserver's PostgreSQL {Binaries(found_pgserver[0], 'pgserver').version()} in {found_pgserver[0]}")
    return 0


def initialise(binaries: Binaries, data: Path, account: Account | None) -> None:
    """initdb into a scratch folder, allow only password logins over the socket, create the database, then
    rename into place: an interrupted first start leaves no half-made cluster behind."""
    user, password, db = credentials()
    began = time.monotonic()
    scratch = data.with_name(data.name + ".initdb")
    if scratch.exists():
        say(f"removing {scratch}, left by an interrupted first start")
        shutil.rmtree(scratch)
    data.parent.mkdir(parents=True, exist_ok=True)
    give(scratch, account)
    say(f"first start: initdb {scratch} (PostgreSQL {binaries.version()}, superuser {user!r}, database {db!r})")
    fd, pwfile = tempfile.mkstemp(prefix=".pwfile-", dir=data.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(password + "\n")
        if account is not None:
            os.chown(pwfile, account.uid, account.gid)
        command = [
            binaries.tool("initdb"),
            "-D",
            str(scratch),
            "-U",
            user,
            f"--pwfile={pwfile}",
            "--auth-local=scram-sha-256",
            "--auth-host=reject",
            "--encoding=UTF8",
            "--locale=C",
            "--no-instructions",
        ]
        result = run_as(account, command, cwd=data.parent)
    finally:
        Path(pwfile).unlink()
    if result.returncode != 0:
        die(f"initdb failed ({result.returncode}):\n{result.stdout}{result.stderr}")
    write_hba(scratch, account, tcp=False)  # run() rewrites it for this start's PG_LISTEN_ADDRESSES
    if db not in ("postgres", "template0", "template1"):
        sql = f"CREATE DATABASE {quote_ident(db)} OWNER {quote_ident(user)}\n"
        single = [binaries.tool("postgres"), "--single", "-D", str(scratch), "postgres"]
        result = run_as(account, single, cwd=data.parent, stdin=sql)
        if result.returncode != 0 or "ERROR" in result.stdout + result.stderr:
            die(f"creating database {db!r} failed:\n{result.stdout}{result.stderr}")
    scratch.rename(data)
    say(f"cluster ready in {data} ({time.monotonic() - began:.1f}s)")


def run() -> int:
    data, sockets = settings()
    account = server_account()
    binaries = choose(data)
    if not (data / "PG_VERSION").is_file():
        if data.exists() and any(data.iterdir()):
            die(f"{data} is not empty but holds no cluster (no PG_VERSION); move it away or `unistack down -v`")
        if data.exists():
            data.rmdir()
        initialise(binaries, data, account)
    elif account is not None and data.stat().st_uid != account.uid:
        say(f"giving {data} to {account.name}")
        for root, dirs, files in os.walk(data):
            for name in [root, *(str(Path(root) / n) for n in dirs + files)]:
                os.lchown(name, account.uid, account.gid)
    tcp = listen_addresses()
    write_hba(data, account, tcp=bool(tcp))
    give(sockets, account)
    let_traverse(sockets.parent, account)
    if account is not None and not can_reach(data, account):
        die(f"the account {account.name} cannot reach {data}: a folder above it is closed to others")

    argv = [
        binaries.tool("postgres"),
        "-D",
        str(data),
        "-k",
        str(sockets),
        "-p",
        PORT,
        "-c",
        f"listen_addresses={tcp}",  # empty: no TCP at all
        "-c",
        "unix_socket_permissions=0700",  # the server's account only; root connects anyway
        "-c",
        "password_encryption=scram-sha-256",
        "-c",
        "log_line_prefix=%m [%p] %q%u@%d ",
        "-c",
        "log_connections=off",
    ]
    who = f"as {account.name} (uid {account.uid})" if account else f"as uid {os.getuid()}"
    say(
        f"starting PostgreSQL {binaries.version()} ({binaries.origin}, {binaries.bindir}) {who}; data {data}; "
        f"socket {sockets}/.s.PGSQL.{PORT}; "
        + (f"TCP on {tcp} port {PORT} (pg_hba: {os.environ.get('PG_HBA_ADDRESSES', 'samenet')})" if tcp else "no TCP")
    )
    env = {k: v for k, v in os.environ.items() if k not in ("POSTGRES_PASSWORD", "PGPASSWORD")}
    os.chdir(data)
    if account is not None:
        os.setgroups([])
        os.setgid(account.gid)
        os.setuid(account.uid)
    # postgres takes our pid: unistack's signals reach it directly. In a container that pid is 1, and the kernel
    # drops a signal sent to a PID 1 that has no handler for it: a stop signal arriving between the exec and
    # postgres installing its handlers would be lost (the container then runs until it is killed, uncleanly).
    # Blocked, they wait across the exec until postgres unblocks them with its handlers in place.
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    os.execve(argv[0], argv, env)
    return 1


def check() -> int:
    _, sockets = settings()
    found = candidates()
    if not found:
        print("no pg_isready found (setup has not run?)")
        return 1
    user, db = setting("POSTGRES_USER", "postgres"), setting("POSTGRES_DB", "postgres")
    command = [found[0].tool("pg_isready"), "-h", str(sockets), "-p", PORT, "-U", user, "-d", db, "-t", "3"]
    # exec, not a child: a check that is killed (timed out, or cancelled by a stop) leaves no orphan behind, which
    # the container's PID 1, postgres itself, would reap as a crashed backend (then it aborts its shutdown)
    sys.stdout.flush()
    os.execv(command[0], command)  # pg_isready prints its verdict; exit 0 accepting, 1 rejecting, 2 no answer
    return 1


def main(argv: list[str]) -> int:
    commands = {"setup": setup, "run": run, "check": check}
    if len(argv) != 1 or argv[0] not in commands:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    return commands[argv[0]]()


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
