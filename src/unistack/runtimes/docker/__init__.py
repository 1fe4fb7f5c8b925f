"""The Docker runtime (containers on a Docker Engine through the docker SDK), one job per module:

- ``runtime``: the Runtime driver (start, probe, stop, adopt, logs) for ``<project>-<service>-1`` containers,
  handing each job to its module: ``containers`` (created, reused or replaced, started), ``healthchecks`` (exec
  probes), ``stopping`` (signal, grace, SIGKILL), ``beside`` (start-first updates), ``installs``;
- ``spec`` (pure): a Compose service -> container-create arguments, the config hash, every refused key
  (``spec_networks`` and ``spec_mounts`` translate their keys into ``spec_state``'s translation);
- ``resources``: Compose's names and labels, networks and named volumes;
- ``engine``: the connection, blocking SDK calls in threads, errors translated, the exit watcher;
- ``logs``: container logs across restarts; ``filecopy``: files into a running container (``watch``);
- ``images``: build plans and content-hashed builds; ``base_image``: the offline base (debootstrap).

Importing this package imports none of them (the docker SDK is loaded only when a module here is).
"""
