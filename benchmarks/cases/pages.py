"""TODO"""

from __future__ import annotations

from benchmarks.cases.common import page_case

page_case("home_page", "home")
