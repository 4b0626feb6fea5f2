"""The Docker Engine API over a unix socket (`sangja system service`, docs/api.md).

A thin front over the same engine library the CLI uses, as the CLI is: each request opens
the engine on the service's --root/--runroot, so the CLI and the API see the same
containers, images, volumes and networks at the same time. Modules:

- server: the listening socket (path, mode 0600, systemd socket activation), the threads,
  the idle exit, the reaper of the monitors the service forks.
- http: one request: version negotiation, routing, JSON replies, streams, hijacking.
- routes: the table of endpoints.
- create_body: Docker's create body (Config, HostConfig, NetworkingConfig) -> the engine's
  ContainerOptions.
- containers, attach, exec, images, volumes, networks, system, events: the endpoints."""
