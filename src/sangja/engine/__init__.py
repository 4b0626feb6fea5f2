"""The daemonless engine: images + flags become OCI bundles run by an OCI runtime, each
container watched by a small monitor process (see docs/engine.md)."""
