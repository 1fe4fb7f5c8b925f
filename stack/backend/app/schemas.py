"""What the API reads and writes: Base/Create/Update/Public models, validated at the HTTP edge."""

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator

from app.models import BODY_MAX, TITLE_MAX


class NoteBase(BaseModel):
    title: str = Field(min_length=1, max_length=TITLE_MAX)
    body: str = Field(default="", max_length=BODY_MAX)


class NoteCreate(NoteBase):
    model_config = ConfigDict(extra="forbid")


class NoteUpdate(BaseModel):
    """A partial update: only the fields sent are changed; `null` is refused (no field is nullable)."""

    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(default=None, min_length=1, max_length=TITLE_MAX)
    body: str | None = Field(default=None, max_length=BODY_MAX)
    pinned: StrictBool | None = None  # JSON true/false only, not "yes" or 1

    @field_validator("title", "body", "pinned")
    @classmethod
    def _not_null(cls, value: str | bool | None) -> str | bool:
        # Runs only for fields that were sent, so a missing field stays None and means "unchanged".
        if value is None:
            raise ValueError("may be left out but not null")
        return value


class AttachmentPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    filename: str
    size: int
    content_type: str


class NotePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    title: str
    body: str
    pinned: bool
    created_at: datetime
    updated_at: datetime
    attachments: list[AttachmentPublic]
