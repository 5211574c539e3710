"""`make screenshots`: every main view, wide and on a phone, photographed by real Chromium from a
cluster given the tool's own history (here the tests' in-process one; the tool starts processes)."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from flame.devtools.screenshots import VIEWPORTS, Viewer, capture, delivered, seed, wait_until
from tests.browser import launch_chromium
from tests.cluster import PASSWORD, Cluster
from tests.social import online_for

pytestmark = pytest.mark.browser
VIEWS = [
    "login",
    "contacts",
    "conversation",
    "lightbox",
    "quick-switcher",
    "block-confirm",
    "profile",
    "settings",
    "search",
]


async def test_the_screenshots_show_every_view_at_both_widths(
    trio: Cluster, tmp_path: Path
) -> None:
    await online_for(trio, "alice", "bob", "carol")
    ui = {name: await trio.ui(name) for name in ("alice", "bob", "carol")}
    await seed(ui)
    await wait_until("bob's messages", lambda: delivered(ui["alice"], "bob", 3), 20)
    await wait_until("carol's messages", lambda: delivered(ui["alice"], "carol", 2), 20)
    async with launch_chromium() as browser:
        viewer = Viewer("alice", trio.daemons["alice"].ui_url, PASSWORD)
        written = await capture(browser, viewer, tmp_path)
    expected = [
        tmp_path / f"{label}-{width}" / f"{n:02d}-{view}.png"
        for label, width, _ in VIEWPORTS
        for n, view in enumerate(VIEWS, start=1)
    ]
    assert written == expected
    for path in written:
        with Image.open(path) as image:
            assert image.format == "PNG"
            width = next(w for label, w, _ in VIEWPORTS if path.parent.name.startswith(label))
            assert image.width == width, path
