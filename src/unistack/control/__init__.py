"""The per-instance supervisor daemon, its control socket (server and client), its state file and lock."""
