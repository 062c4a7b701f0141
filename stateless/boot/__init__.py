"""Boot: images' boot.cfg files read and rendered per host, iPXE scripts, pxelinux configs.

Pure: the daemon (`stateless.daemon.boot`) serves what these functions render, and the
directory adapter (`stateless.directory.images`) stores what `parse_bootcfg` reads.
"""
