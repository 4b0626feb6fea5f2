"""Images that need no registry: built from what the host already has."""

from __future__ import annotations

import shutil
import tempfile

from sangja.image.store import ImageStore, StoreError

DEFAULT_BUSYBOX_NAME = "localhost/busybox:latest"


def bootstrap_busybox(store: ImageStore, name: str = DEFAULT_BUSYBOX_NAME) -> str:
    """Build a busybox rootfs from the host's static busybox, import and tag it; return the id."""
    from sangja.image.busybox import BusyboxNotFound, build_busybox_rootfs

    canonical = store.canonical(name)  # reject a bad name before doing any work
    with store.lock.shared():  # the temp tree and the blobs are not garbage until tagged
        tmp = tempfile.mkdtemp(prefix=".bootstrap-", dir=store.root)
        try:
            rootfs = f"{tmp}/rootfs"
            try:
                build_busybox_rootfs(rootfs)
            except BusyboxNotFound as e:
                raise StoreError(str(e)) from None
            image_id = store.import_rootfs(
                rootfs, config_overrides={}, created_by="sangja bootstrap busybox"
            )
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        store.tag(canonical, image_id)
    return image_id
