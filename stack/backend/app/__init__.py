"""The backend of the unistack application stack: notes with file attachments and a live WebSocket feed.

Importing this package does nothing: the app is built by `app.main.create_app()`, and `app.healthcheck` must stay
importable without the web framework.
"""
