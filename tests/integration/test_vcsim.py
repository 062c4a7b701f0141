"""The vCenter simulator launcher: read-after-write per host, faults and delays, over plain pyvmomi."""

from __future__ import annotations

from typing import Any

from pyVmomi import vim

from tests.integration.fixtures_vcsim import Vcsim


def hosts_of(si: Any) -> list[Any]:
    content = si.RetrieveContent()
    view = content.viewManager.CreateContainerView(content.rootFolder, [vim.HostSystem], True)
    try:
        return sorted(view.view, key=lambda h: h.name)
    finally:
        view.Destroy()


def test_first_line_announces_url(vcsim: Vcsim) -> None:
    assert vcsim.first_line.startswith("VCSIM_URL=http://127.0.0.1:")
    assert vcsim.url.endswith("/sdk")
    si = vcsim.connect()
    assert len(hosts_of(si)) == 4
