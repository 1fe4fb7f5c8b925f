"""Deployment targets beyond one machine: a cluster engine that supervises by itself (``swarm``: an exporter and a
driver), or manifests for one (``kubernetes``). Never a Runtime: the engine in ``engine/`` does not run here.
"""
