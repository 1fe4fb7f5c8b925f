"""User workflows on top of a running instance: ``validate`` (validate.py runs the checks; report.py prints them;
checks_builtin.py, isolation.py, checks_http.py, checks_command.py and browser.py are the checks), and the
environments' workflows beside it (env*.py and the modules they use).

ops reads the instance through the daemon's rows (``control.client``) and the project from ``config``, talks
HTTP to the instance's entry point, and may use a runtime to run a command in a container. It never supervises,
never prints (the verbs in ``commands/`` do) and never exits.
"""
