"""The checks behind /api/ready: database round trip, migrations at head, uploads folder writable.

Each check returns a `Check` and never raises; details name the cause and never include a secret.

Alembic is imported by the migrations check, on its first run, not with this module: it takes about 0.3 s, which
would otherwise delay every start of the backend before it can serve anything (`dev_server.py` imports it once in
its parent process, so reloads never pay it).
"""

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from app import uploads

MIGRATIONS_DIR = Path(__file__).parent / "alembic"


@dataclass(frozen=True)
class Check:
    ok: bool
    detail: str


def _first_line(exc: BaseException) -> str:
    # A DBAPIError's own text appends the SQL and a link; the driver's message is what names the cause.
    cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    lines = str(cause).strip().splitlines()
    return (lines[0] if lines else type(cause).__name__)[:200]


def check_database(engine: Engine) -> Check:
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        return Check(ok=False, detail=_first_line(exc))
    return Check(ok=True, detail="SELECT 1 answered")


def code_heads() -> set[str]:
    from alembic.script import ScriptDirectory  # lazily: see the module docstring

    return set(ScriptDirectory(str(MIGRATIONS_DIR)).get_heads())


def check_migrations(engine: Engine) -> Check:
    from alembic.runtime.migration import MigrationContext  # lazily: see the module docstring

    heads = code_heads()
    try:
        with engine.connect() as connection:
            current = set(MigrationContext.configure(connection).get_current_heads())
    except SQLAlchemyError as exc:
        return Check(ok=False, detail=_first_line(exc))
    if current == heads:
        return Check(ok=True, detail=f"at head {', '.join(sorted(heads))}")
    found = ", ".join(sorted(current)) or "no revision"
    return Check(
        ok=False,
        detail=f"database at {found}, code at head {', '.join(sorted(heads))}: run `alembic upgrade head`",
    )


def check_uploads(directory: Path) -> Check:
    try:
        uploads.check_writable(directory)
    except OSError as exc:
        return Check(ok=False, detail=f"{directory} is not writable: {exc.strerror or exc}")
    return Check(ok=True, detail="writable")


def run_checks(engine: Engine, uploads_dir: Path) -> dict[str, Check]:
    database = check_database(engine)
    migrations = check_migrations(engine) if database.ok else Check(ok=False, detail="skipped: no database")
    return {"database": database, "migrations": migrations, "uploads": check_uploads(uploads_dir)}
