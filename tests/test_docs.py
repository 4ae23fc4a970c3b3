"""The README's examples are real: every complete spec in it checks, with the cost it claims."""

from __future__ import annotations

import re

import archlang
from tests.conftest import ROOT


def readme_specs() -> list[str]:
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"^```[a-z]*\n(.*?)^```", text, re.S | re.M)
    return [b for b in blocks if re.search(r"^arch \w+", b, re.M)]


def test_readme_specs_check_and_match_their_claims():
    specs = readme_specs()
    assert specs, "the README's tour lost its example"
    readme = (ROOT / "README.md").read_text()
    for spec in specs:
        space = archlang.loads(spec, name="README.md")
        cost = archlang.fix(space, archlang.api.default_assignment(space)).cost
        if space.name == "tiny":
            assert f"{cost.params:,} params" in readme
