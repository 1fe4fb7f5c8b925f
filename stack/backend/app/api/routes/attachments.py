"""File attachments: upload onto a note (POST /api/notes/{id}/attachments) and download (GET /api/attachments/{id}).

The request body as a whole is capped by `api.middleware.BodyLimitMiddleware`; the file itself is checked here
while it is copied into UPLOADS_DIR, so an upload over MAX_UPLOAD_BYTES is answered 413 and leaves no file behind.
"""

import logging
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, BackgroundTasks, File, HTTPException, UploadFile, status
from fastapi.responses import FileResponse

from app import crud, events, uploads
from app.api.deps import BroadcasterDep, SessionDep, SettingsDep
from app.api.routes.notes import NOT_FOUND, found
from app.schemas import AttachmentPublic, NotePublic

router = APIRouter(tags=["attachments"])
log = logging.getLogger(__name__)


def content_disposition(filename: str) -> str:
    """`attachment` with an ASCII fallback name and the exact name in RFC 5987 form (`filename*=UTF-8''...`)."""
    fallback = "".join(char if " " <= char <= "~" and char not in '"\\' else "_" for char in filename)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


@router.post(
    "/notes/{note_id}/attachments",
    status_code=status.HTTP_201_CREATED,
    responses={**NOT_FOUND, status.HTTP_413_CONTENT_TOO_LARGE: {"description": "Larger than MAX_UPLOAD_BYTES"}},
    form_limits={"max_files": 1},
)
def upload_attachment(
    note_id: int,
    file: Annotated[UploadFile, File(description="The file, as multipart field `file`")],
    session: SessionDep,
    settings: SettingsDep,
    broadcaster: BroadcasterDep,
    background_tasks: BackgroundTasks,
) -> AttachmentPublic:
    db_note = found(crud.get_note(session=session, note_id=note_id))
    filename = uploads.display_name(file.filename)
    try:
        stored = uploads.store(file.file, directory=settings.uploads_dir, limit=settings.max_upload_bytes)
    except uploads.UploadTooLarge as exc:
        raise HTTPException(status_code=status.HTTP_413_CONTENT_TOO_LARGE, detail=str(exc)) from None
    try:
        attachment = crud.create_attachment(
            session=session,
            db_note=db_note,
            filename=filename,
            content_type=uploads.content_type_for(file.content_type, filename),
            size=stored.size,
            stored_name=stored.name,
        )
    except BaseException:
        uploads.delete(settings.uploads_dir, [stored.name])
        raise
    note = NotePublic.model_validate(db_note)
    background_tasks.add_task(broadcaster.publish, events.note_changed("note.updated", note))
    return AttachmentPublic.model_validate(attachment)


@router.get(
    "/attachments/{attachment_id}",
    response_class=FileResponse,
    responses={status.HTTP_404_NOT_FOUND: {"description": "No attachment with this id, or its file is gone"}},
)
def download_attachment(attachment_id: int, session: SessionDep, settings: SettingsDep) -> FileResponse:
    attachment = crud.get_attachment(session=session, attachment_id=attachment_id)
    if attachment is None:
        raise HTTPException(status_code=status.HTTP_404_NOT_FOUND, detail="Attachment not found")
    path = uploads.path_of(settings.uploads_dir, attachment.stored_name)
    if not path.is_file():
        log.error("Attachment %d: its file %s is missing", attachment.id, path)
        raise HTTPException(status_code=status.HTTP_404_NOT_FOUND, detail="The attachment's file is missing")
    return FileResponse(
        path,
        media_type=attachment.content_type,
        headers={"Content-Disposition": content_disposition(attachment.filename), "X-Content-Type-Options": "nosniff"},
    )
