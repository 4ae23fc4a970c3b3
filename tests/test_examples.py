"""Every example: checked, exact costs against published reference figures, compiled to torch.

Reference figures come from outside archlang: torchvision's model cards (parameters, GFLOPS —
which are GMACs) and timm's vit_tiny_patch16_224 (parameters).
"""

from __future__ import annotations

import pytest
import torch

import archlang
from tests.conftest import EXAMPLES

REFERENCE = {
    # name: (params, MACs in G to three decimals, or None where no figure is published)
    "resnet18": (11_689_512, 1.814),
    "resnet50": (25_557_032, 4.089),
    "mobilenet_v2": (3_504_872, 0.301),
    "vit_tiny": (5_717_416, None),
}
ALL = sorted(p.stem for p in EXAMPLES.glob("*.arch"))


@pytest.mark.parametrize("name", ALL)
def test_every_example_checks(name):
    space = archlang.load(EXAMPLES / f"{name}.arch")
    values = archlang.api.default_assignment(space)
    assert archlang.fix(space, values).cost.params > 0


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_reference_parameters_and_macs(name):
    params, gmacs = REFERENCE[name]
    cost = archlang.fix(archlang.load(EXAMPLES / f"{name}.arch"), {}).cost
    assert cost.params == params
    if gmacs is not None:
        assert round(cost.macs / 1e9, 3) == gmacs
    assert cost.flops == 2 * cost.macs


def test_depth_matches_the_names():
    for name, depth in (("resnet18", 18), ("resnet50", 50)):
        assert archlang.fix(archlang.load(EXAMPLES / f"{name}.arch"), {}).cost.depth == depth




@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_flop_counter_agrees_exactly(name):
    """archlang's flops equals torch.utils.flop_counter's count on the built module."""
    from torch.utils.flop_counter import FlopCounterMode

    arch = archlang.fix(archlang.load(EXAMPLES / f"{name}.arch"), {})
    model = arch.build("torch").eval()
    assert sum(p.numel() for p in model.parameters()) == arch.cost.params
    x = torch.randn(1, *arch.graph.input_layers()[0].shape)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    assert counter.get_total_flops() == arch.cost.flops


def test_state_dict_keys_are_readable_and_deterministic():
    arch = archlang.fix(archlang.load(EXAMPLES / "resnet18.arch"), {})
    keys = list(arch.build("torch").state_dict())
    assert keys == list(arch.build("torch").state_dict())
    # torchvision's own names, because the spec labels its layers that way
    for key in ("conv1.weight", "bn1.running_mean", "layer1.0.conv1.weight",
                "layer2.0.downsample.0.weight", "layer2.0.downsample.1.bias", "fc.weight"):
        assert key in keys


@pytest.mark.parametrize("name", ALL)
def test_every_example_compiles_to_torch(name):
    """Each example's first point builds and emits; an op the backend lacks is a located error."""
    space = archlang.load(EXAMPLES / f"{name}.arch")
    arch = archlang.fix(space, archlang.api.default_assignment(space))
    unsupported = {layer.op for layer in arch.graph.layers} - {"input"} - set(_torch_builders())
    if unsupported:
        with pytest.raises(archlang.ArchError, match="the torch backend does not support op"):
            arch.build("torch")
        return
    model = arch.build("torch")
    assert sum(p.numel() for p in model.parameters()) == arch.cost.params
    assert "import torch" in arch.emit("torch")


def _torch_builders():
    from archlang.backends.torch import BUILDERS

    return BUILDERS
