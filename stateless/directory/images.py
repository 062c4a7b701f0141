"""Boot images in the directory: import, delete (refused while in use), assign, roll back.

An image is an entry of ou=images; a container's assignment is its `statelessImageName`,
and the assignment it replaced is kept in `statelessPreviousImage` so a rollback restores
it (and a second rollback undoes the first).
"""

from __future__ import annotations

import ldap3

from stateless.boot.select import assigned, rolled_back
from stateless.directory.client import Directory
from stateless.errors import ConflictError, NotFoundError
from stateless.model.inventory import Container, Image, Snapshot, check_name, normalize_path


def users_of(snapshot: Snapshot, name: str) -> list[str]:
    """What names image `name`: rules, containers, and containers keeping it for a rollback."""
    out = [f"rule {r.name}" for r in snapshot.rules if r.image == name]
    for path, container in sorted(snapshot.containers.items()):
        if container.image == name:
            out.append(f"container {path}")
        elif container.previous_image == name:
            out.append(f"container {path} (kept for a rollback)")
    return out


def delete_image(d: Directory, name: str) -> None:
    check_name(name, "image")
    snapshot = d.snapshot()
    if name not in snapshot.images:
        raise NotFoundError(f"image {name}: no such image; see `stateless image list`")
    users = users_of(snapshot, name)
    if users:
        raise ConflictError(f"image {name} is in use by {', '.join(users)}; assign another image "
                            "or change those rules first")
    d.delete_entry(d.named_dn("images", name), f"delete image {name}")


def _container(snapshot: Snapshot, path: str) -> Container:
    path = normalize_path(path)
    container = snapshot.containers.get(path)
    if container is None:
        raise NotFoundError(f"container {path}: not in ou=inventory; add it with "
                            "`stateless container add`")
    return container


def _write(d: Directory, container: Container, image: str | None, previous: str | None,
           what: str) -> None:
    d.modify(container.dn or d.container_dn(container.path), {
        "statelessImageName": [(ldap3.MODIFY_REPLACE, [image] if image else [])],
        "statelessPreviousImage": [(ldap3.MODIFY_REPLACE, [previous] if previous else [])]}, what)


def assign_image(d: Directory, path: str, name: str) -> tuple[str, str | None]:
    """Assign image `name` at `path`: (image, previous image) as written."""
    check_name(name, "image")
    snapshot = d.snapshot()
    if name not in snapshot.images:
        raise NotFoundError(f"image {name}: no such image; import it with `stateless image import`")
    container = _container(snapshot, path)
    image, previous = assigned(container, name)
    _write(d, container, image, previous, f"assign image {name} to {container.path}")
    return image, previous


def rollback_image(d: Directory, path: str) -> tuple[str | None, str | None]:
    """Restore the previous assignment at `path`: (image, previous image) as written."""
    snapshot = d.snapshot()
    container = _container(snapshot, path)
    image, previous = rolled_back(container)
    if image is not None and image not in snapshot.images:
        raise NotFoundError(f"container {container.path}: the previous image {image} is no longer "
                            "in ou=images; import it again or assign another")
    _write(d, container, image, previous, f"roll back the image of {container.path}")
    return image, previous


def replace_image(d: Directory, image: Image) -> None:
    """Write an image entry afresh (import --replace): same name, new files."""
    d.delete_entry(d.named_dn("images", image.name), f"replace image {image.name}")
    d.add_image(image)


__all__ = ["assign_image", "delete_image", "replace_image", "rollback_image", "users_of"]
