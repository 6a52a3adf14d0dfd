"""Enumerate every URL pattern of the project, with its full name and converters."""

from __future__ import annotations

from dataclasses import dataclass

from django.urls import URLPattern, URLResolver, get_resolver


@dataclass(frozen=True)
class Route:
    name: str
    converters: dict[str, str]  # kwarg -> converter class name
    callback: object


def all_routes() -> list[Route]:
    routes: list[Route] = []

    def walk(patterns, namespace: str, converters: dict[str, str]) -> None:
        for entry in patterns:
            found = dict(converters)
            for key, conv in entry.pattern.converters.items():
                found[key] = type(conv).__name__
            if isinstance(entry, URLResolver):
                ns = namespace
                if entry.namespace:
                    ns = f"{namespace}{entry.namespace}:"
                walk(entry.url_patterns, ns, found)
            elif isinstance(entry, URLPattern) and entry.name:
                routes.append(Route(f"{namespace}{entry.name}", found, entry.callback))

    walk(get_resolver().url_patterns, "", {})
    return routes
