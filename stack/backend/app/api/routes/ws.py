"""WebSocket /api/ws: pushes every note event to the client as JSON text, until either side leaves.

The server sends nothing until an event; what the client sends is read (to notice it leaving) and ignored.
"""

import anyio
from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from app.api.deps import BroadcasterDep
from app.events import Subscription

router = APIRouter(tags=["live"])


@router.websocket("/ws")
async def notes_feed(websocket: WebSocket, broadcaster: BroadcasterDep) -> None:
    # Subscribed before the handshake completes, so no event after it is missed.
    with broadcaster.subscribe() as subscription:
        await websocket.accept()
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(_forward, websocket, subscription)
            await _until_client_leaves(websocket)
            tasks.cancel_scope.cancel()


async def _until_client_leaves(websocket: WebSocket) -> None:
    while (await websocket.receive())["type"] != "websocket.disconnect":
        pass


async def _forward(websocket: WebSocket, subscription: Subscription) -> None:
    """Sends events; when the broadcaster ends the subscription (shutdown, client too slow), closes the socket."""
    try:
        async for message in subscription:
            await websocket.send_text(message)
        await websocket.close(code=subscription.close_code)
    except WebSocketDisconnect:
        pass  # the client left; `_until_client_leaves` sees it too
