"""/api/notes: list, create, read, update and delete notes; every change is published to the live feed."""

from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, HTTPException, Query, status

from app import crud, events, uploads
from app.api.deps import BroadcasterDep, SessionDep, SettingsDep
from app.models import Note
from app.schemas import NoteCreate, NotePublic, NoteUpdate

router = APIRouter(prefix="/notes", tags=["notes"])

NOT_FOUND: dict[int | str, dict[str, Any]] = {status.HTTP_404_NOT_FOUND: {"description": "No note with this id"}}


def found(note: Note | None) -> Note:
    if note is None:
        raise HTTPException(status_code=status.HTTP_404_NOT_FOUND, detail="Note not found")
    return note


@router.get("")
def read_notes(
    session: SessionDep,
    skip: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[NotePublic]:
    """Notes, newest first."""
    return [NotePublic.model_validate(note) for note in crud.list_notes(session=session, skip=skip, limit=limit)]


@router.post("", status_code=status.HTTP_201_CREATED)
def create_note(
    note_in: NoteCreate, session: SessionDep, broadcaster: BroadcasterDep, background_tasks: BackgroundTasks
) -> NotePublic:
    note = NotePublic.model_validate(crud.create_note(session=session, note_in=note_in))
    background_tasks.add_task(broadcaster.publish, events.note_changed("note.created", note))
    return note


@router.get("/{note_id}", responses=NOT_FOUND)
def read_note(note_id: int, session: SessionDep) -> NotePublic:
    return NotePublic.model_validate(found(crud.get_note(session=session, note_id=note_id)))


@router.patch("/{note_id}", responses=NOT_FOUND)
def update_note(
    note_id: int,
    note_in: NoteUpdate,
    session: SessionDep,
    broadcaster: BroadcasterDep,
    background_tasks: BackgroundTasks,
) -> NotePublic:
    """Changes the fields sent; an empty object changes nothing and publishes nothing."""
    db_note = found(crud.get_note(session=session, note_id=note_id))
    note = NotePublic.model_validate(crud.update_note(session=session, db_note=db_note, note_in=note_in))
    if note_in.model_fields_set:
        background_tasks.add_task(broadcaster.publish, events.note_changed("note.updated", note))
    return note


@router.delete("/{note_id}", status_code=status.HTTP_204_NO_CONTENT, responses=NOT_FOUND)
def delete_note(
    note_id: int,
    session: SessionDep,
    settings: SettingsDep,
    broadcaster: BroadcasterDep,
    background_tasks: BackgroundTasks,
) -> None:
    """Deletes the note, its attachments and their stored files."""
    db_note = found(crud.get_note(session=session, note_id=note_id))
    stored_names = crud.delete_note(session=session, db_note=db_note)
    uploads.delete(settings.uploads_dir, stored_names)
    background_tasks.add_task(broadcaster.publish, events.note_deleted(note_id))
