"""Golden emitted source: what `archlang compile -o` writes for each example, byte for byte.

A change to the emitted code shows up here as a diff to review. To accept a deliberate change,
run `ARCHLANG_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_golden.py` and commit the
files under tests/golden/.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import archlang
from tests.conftest import EXAMPLES

GOLDEN = Path(__file__).parent / "golden" / "torch"
CASES = {
    "resnet18": {},
    "mobilenet_v2": {},
    "vit_tiny": {},
    "digits_space": {"width": 24, "stage1.depth": 2, "stage1.0.conv1.kernel": 5,
                     "stage1.1.conv1.kernel": 3, "one_of1": 0, "down.conv1.kernel": 3,
                     "optional1": True, "optional2": True, "dropout1.p": 0.25},
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_emitted_torch_source_matches_golden(name):
    arch = archlang.fix(archlang.load(EXAMPLES / f"{name}.arch"), CASES[name])
    text = arch.emit("torch")
    path = GOLDEN / f"{name}.py"
    if os.environ.get("ARCHLANG_UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text()


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_source_builds_the_same_module(name):
    """The golden file, executed, is the model archlang builds in memory."""
    import torch

    arch = archlang.fix(archlang.load(EXAMPLES / f"{name}.arch"), CASES[name])
    built = arch.build("torch").eval()
    scope: dict = {}
    exec(compile((GOLDEN / f"{name}.py").read_text(), str(GOLDEN / f"{name}.py"), "exec"), scope)
    from archlang.backends.torch.emit import class_name

    emitted = scope[class_name(arch.space.name)]().eval()
    assert [(k, v.shape) for k, v in emitted.state_dict().items()] == \
        [(k, v.shape) for k, v in built.state_dict().items()]
    emitted.load_state_dict(built.state_dict())
    x = torch.randn(1, *arch.graph.input_layers()[0].shape)
    with torch.no_grad():
        assert torch.equal(emitted(x), built(x))
