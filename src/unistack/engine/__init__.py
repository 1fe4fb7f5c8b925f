"""The supervisor: service state machines, health gating, restart policy. No subprocess, docker or sockets."""
