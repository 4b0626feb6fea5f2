"""Data models of the OCI specs (runtime config and state), with validation."""
