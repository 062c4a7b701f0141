"""The TFTP root: atomic writes of changed files only, stale own files removed, others kept."""

from __future__ import annotations

from pathlib import Path

from stateless.boot.render import PXELINUX_MARK
from stateless.daemon.boot import write_tree

U1 = "4c4c4544-0042-3510-8052-b4c04f4b4e31"


def test_only_changed_files_are_written_and_only_own_stale_ones_removed(tmp_path: Path) -> None:
    ours = f"{PXELINUX_MARK}\nSAY one\n"
    files = {f"pxelinux.cfg/{U1}": ours, f"stateless/{U1}/boot.cfg": "kernel=b.b00\n",
             "pxelinux.cfg/default": f"{PXELINUX_MARK}\nSAY default\n"}
    assert write_tree(tmp_path, files) == (3, 0)
    (tmp_path / "pxelinux.cfg" / "01-aa-bb-cc-dd-ee-ff").write_text("DEFAULT local\n")  # an admin's
    (tmp_path / "pxelinux.0").write_bytes(b"\x00")
    kept = (tmp_path / "pxelinux.cfg" / U1).stat()
    files[f"stateless/{U1}/boot.cfg"] = "kernel=b.b01\n"
    assert write_tree(tmp_path, files) == (1, 0)
    again = (tmp_path / "pxelinux.cfg" / U1).stat()
    assert (again.st_ino, again.st_mtime_ns) == (kept.st_ino, kept.st_mtime_ns)
    assert (tmp_path / "stateless" / U1 / "boot.cfg").read_text() == "kernel=b.b01\n"

    del files[f"pxelinux.cfg/{U1}"], files[f"stateless/{U1}/boot.cfg"]
    assert write_tree(tmp_path, files) == (0, 2)
    assert not (tmp_path / "pxelinux.cfg" / U1).exists()
    assert not (tmp_path / "stateless" / U1).exists()
    assert (tmp_path / "pxelinux.cfg" / "01-aa-bb-cc-dd-ee-ff").read_text() == "DEFAULT local\n"
    assert (tmp_path / "pxelinux.0").exists()
    assert not list(tmp_path.rglob(".tmp-*"))
    assert oct((tmp_path / "pxelinux.cfg" / "default").stat().st_mode & 0o777) == "0o644"
