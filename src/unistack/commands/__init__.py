"""The CLI's verbs, one module per group (lifecycle, inspect, images, develop; validate, env, later data and
deploy), and what they share (``options``). ``cli.py`` registers them; no module here imports ``cli.py``."""
