"""The registry: every kind resolves to the reader of that name; an unknown kind lists the known ones."""

from __future__ import annotations

import pytest

from anydepth.sources import SOURCES, SourceError, get_source


@pytest.mark.parametrize("kind", list(SOURCES))
def test_every_kind_resolves_to_its_reader(kind: str) -> None:
    module, _, name = SOURCES[kind].partition(":")
    cls = get_source(kind)
    assert cls.name == kind and cls.__name__ == name and cls.__module__ == module


def test_unknown_kind_lists_the_known_ones() -> None:
    with pytest.raises(SourceError, match=r"unknown source kind 'nope'; choose one of images, rgbd-folder, "):
        get_source("nope")
