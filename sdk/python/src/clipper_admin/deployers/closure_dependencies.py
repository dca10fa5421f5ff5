"""Best-effort discovery of what a closure needs: the local modules to pickle
by value and the installed distributions it references."""

from __future__ import annotations

import importlib.metadata
import site
import sys
import sysconfig
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# Provided by the runtime itself; never recorded as the closure's packages.
_RUNTIME_MODULES = {"clipper", "clipper_runtime", "clipper_admin", "builtins", "__main__"}
_MAX_DEPTH = 4
_MAX_CONTAINER_ITEMS = 64


def _installed_roots() -> list[Path]:
    roots = {sysconfig.get_paths()[key] for key in ("stdlib", "platstdlib", "purelib", "platlib")}
    roots.update(getattr(site, "getsitepackages", lambda: [])())
    user_site = getattr(site, "getusersitepackages", lambda: None)()
    if user_site:
        roots.add(user_site)
    return [Path(root).resolve() for root in roots]


def is_local_module(module: types.ModuleType) -> bool:
    """A module of the user's own code (not stdlib, not installed), which the
    model's runner could not import: it must be pickled by value."""
    name = module.__name__
    top = name.split(".")[0]
    if name == "__main__" or top in _RUNTIME_MODULES or top in sys.stdlib_module_names:
        return False
    file = getattr(module, "__file__", None)
    if not file:
        return False
    path = Path(file).resolve()
    return not any(path.is_relative_to(root) for root in _installed_roots())


def _module_of(obj: Any) -> str | None:
    if isinstance(obj, types.ModuleType):
        return obj.__name__
    if isinstance(obj, (types.FunctionType, type)):
        return getattr(obj, "__module__", None)
    return getattr(type(obj), "__module__", None)


def _code_names(code: types.CodeType) -> Iterator[str]:
    yield from code.co_names
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _code_names(const)


def referenced_objects(root: Any) -> Iterator[Any]:
    """The root, the globals its code names, its closure cells and defaults,
    recursively through functions, methods, classes, containers and instance
    attributes, up to a small depth."""
    seen: set[int] = set()
    pending: list[tuple[Any, int]] = [(root, 0)]
    while pending:
        obj, depth = pending.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        yield obj
        if depth >= _MAX_DEPTH:
            continue
        children: list[Any] = []
        if isinstance(obj, types.MethodType):
            children += [obj.__func__, obj.__self__]
        elif isinstance(obj, types.FunctionType):
            names = set(_code_names(obj.__code__))
            children += [obj.__globals__[n] for n in names if n in obj.__globals__]
            children += [cell.cell_contents for cell in obj.__closure__ or () if _cell_is_set(cell)]
            children += list(obj.__defaults__ or ()) + list((obj.__kwdefaults__ or {}).values())
        elif isinstance(obj, type):
            children += [
                v for v in vars(obj).values() if isinstance(v, (types.FunctionType, classmethod, staticmethod))
            ]
            children = [c.__func__ if isinstance(c, (classmethod, staticmethod)) else c for c in children]
        elif isinstance(obj, (list, tuple, set, frozenset)):
            children += list(obj)[:_MAX_CONTAINER_ITEMS]
        elif isinstance(obj, dict):
            children += list(obj.values())[:_MAX_CONTAINER_ITEMS]
        elif not isinstance(obj, types.ModuleType):
            children.append(type(obj))
            attributes = getattr(obj, "__dict__", None)
            if isinstance(attributes, dict):
                children += list(attributes.values())[:_MAX_CONTAINER_ITEMS]
        pending.extend((child, depth + 1) for child in children)


def _cell_is_set(cell: types.CellType) -> bool:
    try:
        _ = cell.cell_contents  # an empty cell raises ValueError on access
    except ValueError:
        return False
    return True


def referenced_modules(root: Any) -> set[str]:
    names = set()
    for obj in referenced_objects(root):
        module = _module_of(obj)
        if module:
            names.add(module)
    return names


def local_modules(root: Any) -> list[types.ModuleType]:
    found = []
    for name in sorted(referenced_modules(root)):
        module = sys.modules.get(name)
        if module is not None and is_local_module(module):
            found.append(module)
    return found


def required_packages(root: Any) -> list[str]:
    """ "name==version" of the installed distributions providing the top-level
    modules the closure references."""
    tops = {name.split(".")[0] for name in referenced_modules(root)}
    distributions_by_top = importlib.metadata.packages_distributions()
    packages = set()
    for top in tops:
        if top in _RUNTIME_MODULES or top in sys.stdlib_module_names or top.startswith("_"):
            continue
        for distribution in distributions_by_top.get(top, []):
            try:
                packages.add(f"{distribution}=={importlib.metadata.version(distribution)}")
            except importlib.metadata.PackageNotFoundError:
                continue
    return sorted(packages)


def _requirement_name(spec: str) -> str:
    for separator in ("==", ">=", "<=", "~=", "!=", ">", "<", "[", ";", " "):
        spec = spec.split(separator)[0]
    return spec.strip().lower().replace("_", "-")


def merge_packages(detected: list[str], requested: list[str]) -> list[str]:
    """The user's requested packages win over detected ones of the same name."""
    requested_names = {_requirement_name(spec) for spec in requested}
    kept = [spec for spec in detected if _requirement_name(spec) not in requested_names]
    return sorted(set(kept)) + [spec for spec in dict.fromkeys(requested)]
