"""``unistack deploy --target swarm``: ``export.py`` turns the resolved Project into Swarm objects (pure data; one
service's container and task pieces in ``taskspec.py``),
``images.py`` gets the images to the nodes through a registry, ``driver.py`` applies the objects layer by layer
and waits on health, ``status.py`` reads a deployment back (``ps``, ``logs``, ``undeploy``).
"""
