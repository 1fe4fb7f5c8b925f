"""``unistack render kubernetes``: ``pods.py`` turns one Compose service into a pod template's pieces (containers,
probes, securityContext, resources, volumes), ``render.py`` the resolved Project into the manifest objects
(workloads, Services, the entry point, NetworkPolicies, Secrets, ConfigMaps) in dependency layers, ``write.py``
the objects into YAML files and an apply script. Pure data until ``write.py``; no cluster is ever contacted.
"""
