"""Param groups put into ``param_groups`` as plain dicts (``opt.param_groups[0] = dict(...)``):
writing torch's spelling (``betas``, ``alpha``, ``momentum``) there does not write descend's
(``beta1``/``beta2``, ``beta``), as :class:`compat.ParamGroup` does. :func:`plain_groups` finds
them when the step plan is built and :func:`reconcile` brings the two spellings back in step
before each step, the one written since last seen winning."""

from __future__ import annotations

from typing import Any

from .compat import ParamGroup, _joined, _same, twin_of


def _same_value(a: Any, b: Any) -> bool:
    if isinstance(a, (tuple, list)) or isinstance(b, (tuple, list)):
        return isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)) and len(a) == len(b) \
            and all(map(_same, a, b))
    return _same(a, b)


def plain_groups(opt: Any, before: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any], dict]]:
    """The param groups that are plain dicts (put into ``param_groups`` from outside, so writing
    ``betas`` does not write ``beta1`` and ``beta2``), each with its aliases and what they were last
    seen as: :func:`reconcile` keeps both spellings in step before each step. ``before``: the
    groups of the previous plan, whose values tell which spelling a replaced group changed."""
    found = twin_of(type(opt))
    aliases = found[1].group_aliases if found else {}
    if not aliases:
        return []
    out: list[tuple[dict[str, Any], dict[str, Any], dict]] = []
    for i, group in enumerate(opt.param_groups):
        if isinstance(group, ParamGroup):
            continue
        old = before[i] if i < len(before) else None
        seen = {} if old is None else {alias: _seen(old, alias, names) for alias, names in aliases.items()}
        out.append((group, aliases, seen))
    reconcile(out)
    return out


def _seen(group: dict[str, Any], alias: str, names: tuple[str, ...]) -> tuple[Any, Any]:
    return group.get(alias), _joined(group, names) if all(n in group for n in names) else None


def reconcile(groups: list[tuple[dict[str, Any], dict[str, Any], dict]]) -> None:
    """Make torch's and descend's spelling of each aliased value agree in plain-dict groups: the
    one that changed since last seen wins (descend's where neither or both did)."""
    for group, aliases, seen in groups:
        for alias, names in aliases.items():
            theirs, ours = _seen(group, alias, names)
            if theirs is None and ours is None:
                continue  # (a group without the value: the step says which key is missing)
            if theirs is not None and (ours is None or not _same_value(theirs, ours)):
                last = seen.get(alias)
                if ours is None or last is not None and _same_value(ours, last[1]) \
                        and not _same_value(theirs, last[0]):
                    if len(names) > 1 and (not hasattr(theirs, "__len__") or len(theirs) != len(names)):
                        raise ValueError(f"{alias} must be a tuple ({', '.join(names)}), got {theirs!r}")
                    group.update(zip(names, theirs if len(names) > 1 else (theirs,)))
                else:
                    group[alias] = ours
            elif theirs is None:
                group[alias] = ours
            seen[alias] = _seen(group, alias, names)
