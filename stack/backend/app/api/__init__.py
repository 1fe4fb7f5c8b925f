"""The HTTP and WebSocket API, mounted under /api."""
