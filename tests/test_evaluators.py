"""The evaluators of a search: train on shipped data, look up NAS-Bench-Graph, zero-cost."""

from __future__ import annotations

import itertools
import pickle

import numpy as np
import pytest

import archlang
from archlang.errors import ArchError
from archlang.search.evaluators import TrialFailed, get_evaluator
from archlang.search.evaluators import data as D
from tests.conftest import EXAMPLES

TINY = "arch tiny { input image[1, 8, 8] flatten linear(32) relu linear(10) }"


def _tiny() -> archlang.Architecture:
    return archlang.fix(archlang.loads(TINY), {})


def _without_time(metrics: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in metrics.items() if k != "train_time"}


# ---------------------------------------------------------------- data


def test_digits_splits_are_fixed_disjoint_and_stratified() -> None:
    data = D.load("digits")
    assert (data.shape, data.classes) == ((1, 8, 8), 10)
    sizes = [len(data.y_train), len(data.y_val), len(data.y_test)]
    assert sum(sizes) == 1797 and sizes[0] == pytest.approx(0.6 * 1797, abs=10)
    labels = np.concatenate([data.y_train, data.y_val, data.y_test])
    first, again = D.split(labels, D.SPLIT_SEED), D.split(labels, D.SPLIT_SEED)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert sorted(np.concatenate(first).tolist()) == list(range(len(labels)))
    assert data.y_test[:10].tolist() == [8, 4, 5, 0, 5, 2, 7, 0, 3, 9]
    for part in (data.y_val, data.y_test):  # every class in every split, in proportion
        assert np.bincount(part, minlength=10).min() >= 30
    assert 0.0 <= data.x_train.min() and data.x_train.max() <= 1.0


def test_mnist_subset_loads_with_fixed_splits() -> None:
    data = D.load("mnist")
    assert data.x_train.shape == (3000, 1, 28, 28) and data.x_train.dtype == np.float32
    assert (len(data.y_val), len(data.y_test), data.classes) == (1000, 1000, 10)
    assert np.bincount(data.y_test, minlength=10).min() >= 80
    # the split depends on SPLIT_SEED only: the same examples in every run and version
    assert data.y_test[:10].tolist() == [3, 7, 2, 6, 5, 6, 3, 6, 2, 1]
    assert data.y_train[:10].tolist() == [0, 1, 7, 1, 1, 3, 1, 5, 8, 4]
    assert D.mnist_path().name == "mnist_5k.csv.gz"


def test_unknown_dataset_is_a_user_error() -> None:
    with pytest.raises(ArchError, match="unknown dataset 'cifar'"):
        get_evaluator("train", dataset="cifar")


# ---------------------------------------------------------------- train


def test_training_on_digits_beats_chance_and_is_deterministic() -> None:
    evaluator = get_evaluator("train", epochs=4, lr=3e-3)
    arch = _tiny()
    first = evaluator.evaluate(arch, seed=0)
    assert first["accuracy"] == first["val_accuracy"] > 0.5  # chance is 0.1
    assert first["test_accuracy"] > 0.5
    assert first["params"] == 64 * 32 + 32 + 32 * 10 + 10 and first["macs"] == 64 * 32 + 320
    assert _without_time(evaluator.evaluate(arch, seed=0)) == _without_time(first)
    assert _without_time(evaluator.evaluate(arch, seed=1)) != _without_time(first)


def test_evaluators_pickle_with_their_options() -> None:
    evaluator = get_evaluator("train", epochs=2, optimizer="adamw", weight_decay=0.01)
    copy = pickle.loads(pickle.dumps(evaluator))
    assert copy == evaluator and copy.optimizer == "adamw"
    assert pickle.loads(pickle.dumps(get_evaluator("lookup", dataset="pubmed"))).dataset == \
        "pubmed"


def test_a_diverging_loss_fails_the_trial_not_the_search() -> None:
    evaluator = get_evaluator("train", epochs=1, optimizer="sgd", lr=1e30)
    with pytest.raises(TrialFailed, match="nan|inf"):
        evaluator.evaluate(_tiny(), seed=0)


def test_a_dataset_that_does_not_fit_the_spec_is_a_user_error() -> None:
    arch = archlang.fix(archlang.loads(
        "arch m { input image[1, 28, 28] flatten linear(10) }"), {})
    with pytest.raises(ArchError, match=r"examples of shape \[1, 8, 8\]"):
        get_evaluator("train", epochs=1).evaluate(arch, seed=0)


def test_unknown_evaluator_and_option() -> None:
    with pytest.raises(ArchError, match="unknown evaluator 'bayes'"):
        get_evaluator("bayes")
    with pytest.raises(ArchError, match="evaluator 'train'"):
        get_evaluator("train", epochz=3)
    with pytest.raises(ArchError, match="unknown optimizer 'lbfgs'"):
        get_evaluator("train", optimizer="lbfgs")


# ---------------------------------------------------------------- zero-cost


def _conv_net(width: int) -> archlang.Architecture:
    return archlang.fix(archlang.loads(
        f"arch m {{ input image[1, 8, 8] conv({width}, 3) relu conv({width}, 3) relu "
        "gap linear(10) }"), {})


def test_naswot_scores_a_wider_net_higher_and_repeats_itself() -> None:
    evaluator = get_evaluator("zero-cost", proxy="naswot", batch_size=32)
    small, big = _conv_net(4), _conv_net(64)
    s, b = evaluator.evaluate(small, seed=0), evaluator.evaluate(big, seed=0)
    assert b["accuracy"] == b["naswot"] > s["naswot"] + 10  # more units tell inputs apart
    assert evaluator.evaluate(big, seed=0) == b
    assert s["params"] < b["params"]


def test_parameter_count_proxy_needs_no_data() -> None:
    evaluator = get_evaluator("zero-cost", proxy="params")
    assert evaluator.evaluate(_conv_net(8), seed=0)["accuracy"] == _conv_net(8).cost.params


def test_entropy_proxy_is_offered_exactly_when_the_metric_exists() -> None:
    from archlang.passes.metrics import metric_names
    from archlang.search.evaluators.zero_cost import proxies

    if "entropy" not in metric_names():
        assert "entropy" not in proxies()
        with pytest.raises(ArchError, match="no `entropy` metric"):
            get_evaluator("zero-cost", proxy="entropy")
        return
    evaluator = get_evaluator("zero-cost", proxy="entropy")
    small, big = evaluator.evaluate(_conv_net(4), 0), evaluator.evaluate(_conv_net(64), 0)
    assert small["entropy"] != big["entropy"]
    assert big["accuracy"] == _conv_net(64).metrics()["entropy"]


# ---------------------------------------------------------------- NAS-Bench-Graph

SPEC = EXAMPLES / "nasbench_graph.arch"
# gnn_list order, as the spec's one_of branches are written
OPS = ("gat", "gcn", "gin", "cheb", "sage", "arma", "graph", "fc", "skip")


def _assignment(links: list[int], ops: list[str], names=OPS) -> dict[str, int]:
    return {"in2": links[1], "in3": links[2], "in4": links[3],
            **{f"n{i + 1}.op": names.index(op) for i, op in enumerate(ops)}}


@pytest.fixture(scope="module")
def graph_space() -> archlang.Space:
    return archlang.load(SPEC)


# (links, ops, dataset) -> (valid_perf, perf), read with the benchmark's own API:
# light_read(dataset)[Arch(links, ops).valid_hash()]
KNOWN = [
    (([0, 1, 2, 1], ["gcn", "gin", "fc", "cheb"], "cora"), (0.79, 0.8046666666666668)),
    (([0, 0, 1, 2], ["gat", "sage", "skip", "arma"], "citeseer"), (0.678, 0.666)),
]


def test_lookup_returns_the_tables_numbers(graph_space) -> None:
    from nas_bench_graph import Arch, light_read

    for (links, ops, dataset), expected in KNOWN:
        entry = light_read(dataset)[Arch(links, ops).valid_hash()]
        assert (entry["valid_perf"], entry["perf"]) == pytest.approx(expected)
        arch = archlang.fix(graph_space, _assignment(links, ops))
        got = get_evaluator("lookup", dataset=dataset).evaluate(arch, seed=0)
        assert got["accuracy"] == got["val_accuracy"] == pytest.approx(entry["valid_perf"])
        assert got["test_accuracy"] == pytest.approx(entry["perf"])
        assert got["bench_params"] == pytest.approx(entry["para"] * 1e6)
        assert got["params"] == arch.cost.params > 0


def test_isomorphic_descriptions_find_one_entry(graph_space) -> None:
    # gcn -> gin -> fc and gcn -> cheb, with the nodes numbered in two orders
    evaluator = get_evaluator("lookup", dataset="cora")
    a = archlang.fix(graph_space, _assignment([0, 1, 2, 1], ["gcn", "gin", "fc", "cheb"]))
    b = archlang.fix(graph_space, _assignment([0, 1, 1, 3], ["gcn", "cheb", "gin", "fc"]))
    c = archlang.fix(graph_space, _assignment([0, 1, 1, 2], ["gcn", "cheb", "gin", "fc"]))
    assert evaluator.evaluate(a, 0) == evaluator.evaluate(b, 0) != evaluator.evaluate(c, 0)


def test_leaves_feed_the_output(graph_space) -> None:
    # node 1 -> node 2 -> node 3, node 4 reads node 1: leaves are nodes 3 and 4
    arch = archlang.fix(graph_space, _assignment([0, 1, 2, 1], ["gcn", "gin", "fc", "cheb"]))
    g = arch.graph
    merge = g.layers[g.layers[g.output].inputs[0]]
    assert merge.op == "add"
    assert sorted(g.layers[i].path.split(".")[0] for i in merge.inputs) == ["n3", "n4"]
    chain = archlang.fix(graph_space, _assignment([0, 1, 2, 3], ["gcn"] * 4)).graph
    assert chain.layers[chain.layers[chain.output].inputs[0]].path == "n4.gcn1"


def test_the_space_maps_onto_all_26206_entries_and_excludes_only_all_skip(graph_space) -> None:
    from archlang.search.evaluators.lookup import benchmark_key, table, table_hash

    keys, all_skip = set(), 0
    for values in itertools.product(range(2), range(3), range(4), *[range(9)] * 4):
        links, ops = benchmark_key(graph_space, dict(zip(
            ("in2", "in3", "in4", "n1.op", "n2.op", "n3.op", "n4.op"), values)))
        if ops == ("skip",) * 4:
            all_skip += 1
            continue
        keys.add(table_hash(links, ops))
    assert graph_space.size == 2 * 3 * 4 * 9**4 == 157_464
    assert all_skip == 24 and keys == set(table("cora"))
    assert len(keys) == 26_206


def test_proteins_space_has_the_five_ops_and_2021_entries() -> None:
    from archlang.search.evaluators.lookup import benchmark_key, table, table_hash

    space = archlang.load(SPEC, params={"proteins": True})
    assert space.size == 24 * 5**4
    names = ("gcn", "sage", "arma", "fc", "skip")
    keys = set()
    for values in itertools.product(range(2), range(3), range(4), *[range(5)] * 4):
        assignment = dict(zip(("in2", "in3", "in4", "n1.op", "n2.op", "n3.op", "n4.op"),
                              values))
        links, ops = benchmark_key(space, assignment)
        assert set(ops) <= set(names)
        if ops != ("skip",) * 4:
            keys.add(table_hash(links, ops))
    assert keys == set(table("proteins")) and len(keys) == 2021
    arch = archlang.fix(space, _assignment([0, 0, 1, 2], ["gcn", "arma", "fc", "sage"], names))
    assert get_evaluator("lookup", dataset="proteins").evaluate(arch, 0)["accuracy"] > 0.5
    nine = archlang.fix(archlang.load(SPEC), _assignment([0, 0, 0, 0], ["gat"] * 4))
    with pytest.raises(TrialFailed, match="proteins = true"):
        get_evaluator("lookup", dataset="proteins").evaluate(nine, 0)


def test_require_excludes_exactly_the_all_skip_cell(graph_space) -> None:
    skip = archlang.fix(graph_space, _assignment([0, 1, 1, 3], ["skip"] * 4))
    assert skip.violations() == ["depth >= 3"]
    for ops in (["skip", "skip", "skip", "fc"], ["gcn", "skip", "skip", "skip"]):
        assert archlang.fix(graph_space, _assignment([0, 0, 0, 0], ops)).violations() == []
    with pytest.raises(TrialFailed, match="no cora entry"):
        get_evaluator("lookup").evaluate(skip, seed=0)


def test_lookup_refuses_a_space_that_is_not_nas_bench_graph() -> None:
    with pytest.raises(ArchError, match="not a NAS-Bench-Graph space"):
        get_evaluator("lookup").evaluate(_tiny(), seed=0)
    with pytest.raises(ArchError, match="no dataset 'mnist'"):
        get_evaluator("lookup", dataset="mnist")


# ---------------------------------------------------------------- the GNN ops


def test_gnn_op_costs_follow_the_layer_definitions() -> None:
    space = archlang.loads(
        "arch g { input x[100, 32] gcn(16, edges = 400) gat(16, 400, heads = 2) "
        "sage(8, 400) arma(8, 400) }")
    layers = {lay.op: lay for lay in archlang.fix(space, {}).graph.layers}
    assert (layers["gcn"].params, layers["gcn"].macs) == (32 * 16 + 16,
                                                          100 * 32 * 16 + 500 * 16)
    assert layers["gat"].params == 16 * 16 + 3 * 16
    assert layers["sage"].params == 2 * 16 * 8 + 8
    assert layers["arma"].params == 2 * 8 * 8 + 8 * 8 + 8
    assert layers["arma"].shape == (100, 8)
    with pytest.raises(ArchError, match="gat heads \\(3\\) must divide the width \\(16\\)"):
        archlang.loads("arch g { input x[10, 4] gat(16, 5, heads = 3) }")
    with pytest.raises(ArchError, match="expects node features"):
        archlang.loads("arch g { input x[1, 4, 4] gcn(16, 5) }")
