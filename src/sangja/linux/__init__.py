"""Thin wrappers over the Linux kernel. The only package that uses ctypes."""
