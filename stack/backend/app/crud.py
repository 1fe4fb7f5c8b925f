"""Database reads and writes for notes and attachments, keyword-only, one transaction per writing function.

Never touches files (the caller stores and deletes them through `app.uploads`) and never publishes events.
"""

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session, joinedload

from app.models import Attachment, Note
from app.schemas import NoteCreate, NoteUpdate


def list_notes(*, session: Session, skip: int = 0, limit: int = 100) -> Sequence[Note]:
    """Newest first, attachments included: one query (the model's default `selectin` would make it two)."""
    query = (
        select(Note)
        .options(joinedload(Note.attachments))
        .order_by(Note.created_at.desc(), Note.id.desc())
        .offset(skip)
        .limit(limit)
    )
    return session.scalars(query).unique().all()


def get_note(*, session: Session, note_id: int) -> Note | None:
    return session.get(Note, note_id)


def create_note(*, session: Session, note_in: NoteCreate) -> Note:
    note = Note(**note_in.model_dump())
    session.add(note)
    session.commit()
    session.refresh(note)
    return note


def update_note(*, session: Session, db_note: Note, note_in: NoteUpdate) -> Note:
    """Changes the fields that were sent; `updated_at` moves only when something was sent."""
    changes = note_in.model_dump(exclude_unset=True)
    if not changes:
        return db_note
    for name, value in changes.items():
        setattr(db_note, name, value)
    session.commit()
    session.refresh(db_note)
    return db_note


def delete_note(*, session: Session, db_note: Note) -> list[str]:
    """Deletes the note and its attachments' rows; returns the stored names of the files now to delete."""
    stored_names = [attachment.stored_name for attachment in db_note.attachments]
    session.delete(db_note)
    session.commit()
    return stored_names


def create_attachment(
    *, session: Session, db_note: Note, filename: str, content_type: str, size: int, stored_name: str
) -> Attachment:
    """Records a stored file on its note, which counts as an update of the note."""
    attachment = Attachment(filename=filename, content_type=content_type, size=size, stored_name=stored_name)
    db_note.attachments.append(attachment)
    db_note.updated_at = func.now()
    session.commit()
    session.refresh(db_note)
    session.refresh(attachment)
    return attachment


def get_attachment(*, session: Session, attachment_id: int) -> Attachment | None:
    return session.get(Attachment, attachment_id)
