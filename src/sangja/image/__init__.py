"""Images: root filesystems, layers and (later) the content-addressed store."""
