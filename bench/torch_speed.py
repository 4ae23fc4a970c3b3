"""Benchmarks (a) and (b) of the core, each side by side with a hand-written model.

(a) spec text -> built nn.Module for resnet50.arch (parse, lower, check, elaborate, build)
    divided by building the hand-written ResNet-50 — target <= 1.2.
(b) forward+backward time of the built resnet18/resnet50 divided by the hand-written one's
    (same weights, same input) — target <= 1.02.

Run: .venv/bin/python bench/torch_speed.py [--quick]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import reference_models  # noqa: E402
from timing import machine, side_by_side  # noqa: E402

import archlang  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def build_from_text(text: str, name: str):
    space = archlang.loads(text, name=name)
    return archlang.fix(space, {}).build("torch")


def bench_build(repeat: int) -> None:
    text = (ROOT / "examples" / "resnet50.arch").read_text()
    build_from_text(text, "resnet50.arch")  # warm caches (grammar, imports) as a user's 2nd build
    side_by_side("(a) resnet50: text -> nn.Module vs hand-written constructor",
                 lambda: build_from_text(text, "resnet50.arch"), reference_models.resnet50,
                 repeat=repeat, target=1.2)


def bench_train_step(name: str, batch: int, repeat: int) -> None:
    torch.manual_seed(0)
    ours = archlang.fix(archlang.load(ROOT / "examples" / f"{name}.arch"), {}).build("torch")
    theirs = getattr(reference_models, name)()
    # identical weights, so both do exactly the same arithmetic
    theirs.load_state_dict(dict(zip(theirs.state_dict().keys(), ours.state_dict().values())))
    x = torch.randn(batch, 3, 224, 224)

    def step(model):
        def run():
            model.zero_grad(set_to_none=True)
            model(x).sum().backward()
        return run

    with torch.no_grad():
        assert torch.allclose(ours.eval()(x), theirs.eval()(x), atol=1e-4), "models differ"
    ours.train(), theirs.train()
    step(ours)(), step(theirs)()  # warm-up
    side_by_side(f"(b) {name}: forward+backward, batch {batch}", step(ours), step(theirs),
                 repeat=repeat, target=1.02)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    # one thread: two busy threads on a shared 2-core machine make timings meaningless
    torch.set_num_threads(1)
    print(f"machine: {machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    bench_build(repeat=3 if args.quick else 7)
    bench_train_step("resnet18", batch=8, repeat=3 if args.quick else 9)
    bench_train_step("resnet50", batch=4, repeat=3 if args.quick else 7)
