"""The OCI runtime as a library: one module per lifecycle operation.

    from sangja.runtime import store
    st = store.Store("/run/sangja/runtime")
    ...
Modules import lazily so that `sangja-runtime` starts fast.
"""
