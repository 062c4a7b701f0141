"""`stateless image`: import from real boot.cfg files, list/show/delete, assign and roll back."""

from __future__ import annotations

import json
from pathlib import Path

from stateless.directory.client import Directory
from tests.integration.test_cli import Run, cli  # noqa: F401  (fixture)

DATA = Path(__file__).resolve().parents[1] / "unit" / "data"


def test_import_list_show_delete(cli: Run, directory: Directory, tmp_path: Path) -> None:  # noqa: F811
    _, out, _ = cli("image", "import", "esx8", "--boot-cfg", str(DATA / "esxi8-boot.cfg"),
                    "--url", "http://images.example.com/esx8/")
    assert "build 8.0.1-0.0.21495797, 44 modules" in out
    image = directory.snapshot().images["esx8"]
    assert image.kernel == "b.b00" and image.modules[0] == "jumpstrt.gz"
    assert image.options == "runweasel cdromBoot" and image.url == "http://images.example.com/esx8"
    cli("image", "import", "esx7", "--boot-cfg", str(DATA / "esxi7-boot.cfg"), "--url",
        "http://images.example.com/esx7")
    _, out, _ = cli("image", "list", "--json")
    assert [i["name"] for i in json.loads(out)] == ["esx7", "esx8"]
    _, out, _ = cli("image", "show", "esx7")
    assert "version: 7.0.3-0.0.19193900" in out and "used by: (nothing)" in out

    cli("container", "add", "/DC1", "--kind", "datacenter")
    cli("rules", "add", "r1", "--image", "esx8")
    status, _, err = cli("image", "delete", "esx8", ok=False)
    assert status != 0 and "in use by rule r1" in err and "Traceback" not in err
    cli("image", "assign", "/DC1", "esx7")
    status, _, err = cli("image", "delete", "esx7", ok=False)
    assert "in use by container /DC1" in err
    cli("rules", "delete", "r1")
    cli("image", "delete", "esx8")
    assert set(directory.snapshot().images) == {"esx7"}


def test_malformed_boot_cfg_names_line_and_reason(cli: Run, tmp_path: Path) -> None:  # noqa: F811
    bad = tmp_path / "boot.cfg"
    bad.write_text("bootstate=0\nkernel=/b.b00\ntimeout=soon\nmodules=/a.gz\n")
    status, _, err = cli("image", "import", "x", "--boot-cfg", str(bad), "--url", "http://i/x",
                         ok=False)
    assert status != 0
    assert f"{bad}: line 3: timeout='soon': expected a whole number" in err
    assert "Traceback" not in err


def test_assign_keeps_the_previous_and_rollback_restores_it(cli: Run,  # noqa: F811
                                                            directory: Directory) -> None:
    for name in ("esx7", "esx8"):
        cli("image", "import", name, "--boot-cfg", str(DATA / f"{name[:3]}i{name[3:]}-boot.cfg"),
            "--url", f"http://i/{name}")
    cli("container", "add", "/DC1", "--kind", "datacenter")
    cli("container", "add", "/DC1/A", "--kind", "cluster")
    cli("image", "assign", "/DC1/A", "esx7")
    _, out, _ = cli("image", "assign", "/DC1/A", "esx8")
    assert "previous: esx7" in out
    container = directory.snapshot().containers["/DC1/A"]
    assert (container.image, container.previous_image) == ("esx8", "esx7")
    cli("image", "rollback", "/DC1/A")
    container = directory.snapshot().containers["/DC1/A"]
    assert (container.image, container.previous_image) == ("esx7", "esx8")
    status, _, err = cli("image", "rollback", "/DC1", ok=False)
    assert status != 0 and "no previous image" in err
    status, _, err = cli("image", "assign", "/DC1", "nope", ok=False)
    assert "image nope: no such image" in err
