"""The API router: every route module, mounted by `create_app` under /api."""

from fastapi import APIRouter

from app.api.routes import attachments, health, notes, ws

api_router = APIRouter()
api_router.include_router(health.router)
api_router.include_router(notes.router)
api_router.include_router(attachments.router)
api_router.include_router(ws.router)
