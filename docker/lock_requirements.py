"""Print the installed runtime dependency closure of b2cal-assets, pinned: docker/requirements.txt.

The images install exactly the versions the tests ran with. Run it in a venv where the project is
installed: ``python docker/lock_requirements.py > docker/requirements.txt``.
"""
from importlib.metadata import PackageNotFoundError, distribution

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name


def wanted(req: Requirement, extras: set[str]) -> bool:
    if req.marker is None:
        return True
    return any(req.marker.evaluate({"extra": e}) for e in extras | {""})


seen: dict[str, tuple[str, set[str]]] = {}
todo = [r for r in map(Requirement, distribution("b2cal-assets").requires or []) if wanted(r, set())]
while todo:
    req = todo.pop()
    name = canonicalize_name(req.name)
    try:
        dist = distribution(req.name)
    except PackageNotFoundError:
        continue
    before = seen.get(name, ("", set()))[1]
    if name in seen and set(req.extras) <= before:
        continue
    extras = before | set(req.extras)
    seen[name] = (dist.version, extras)
    todo += [r for r in map(Requirement, dist.requires or []) if wanted(r, extras)]
print("# The runtime dependencies of b2cal-assets, pinned; made by docker/lock_requirements.py.")
for name in sorted(seen):
    print(f"{name}=={seen[name][0]}")
