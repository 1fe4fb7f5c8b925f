"""The dashboard (`unistack dashboard`): a local web page and HTTP API for one instance, served by a process of its
own that reads what the instance's daemon already keeps (its ``ps`` replies, ``logs/events.jsonl``, the service
logs). ``records.py`` the API's typed records, ``views.py`` (pure) the rows, edges and entry address built from
them, ``sources.py`` where they are read, ``live.py`` the polling and fan-out behind the streams, ``server.py`` the
aiohttp application; ``static/`` the page. Never supervises anything: actions are requests to the daemon.
"""
