"""``unistack render kubernetes``: ``pods.py`` turns one Compose service into a pod template's pieces (containers,
probes, securityContext, resources, volumes), ``environment.py`` its environment and the top-level secrets and
configs into ConfigMaps and Secrets, ``network.py`` its reachability into Services, the entry point and
NetworkPolicies, ``render.py`` the resolved Project into the workloads (Deployments, StatefulSets, Jobs) in
dependency layers, ``write.py`` the objects into YAML files and an apply script. Pure data until ``write.py``; no
cluster is ever contacted.
"""
