"""The command line: each subcommand's output and exit codes."""

from __future__ import annotations

import json

from tests.conftest import EXAMPLES


def test_check_all_examples(run_cli):
    files = sorted(str(p) for p in EXAMPLES.glob("*.arch"))
    code, out, err = run_cli("check", *files)
    assert code == 0, err
    assert out.count(": ok (") == len(files)
    assert "resnet18: fixed network; 11,689,512 params, 1.814 GMACs" in out


def test_check_reports_each_failing_file_and_continues(run_cli, tmp_path):
    bad = tmp_path / "bad.arch"
    bad.write_text("arch a {\n  input x[3, 4, 4]\n  conv(0, 1)\n}\n")
    code, out, err = run_cli("check", str(bad), str(EXAMPLES / "resnet18.arch"))
    assert code == 1
    assert "resnet18.arch: ok" in out
    assert "bad.arch:3:8: error: conv out-channels must be positive, got 0" in err


def test_show_lists_decisions_and_size(run_cli):
    code, out, _ = run_cli("show", str(EXAMPLES / "digits_space.arch"))
    assert code == 0
    assert "10 decisions" in out and "discrete part 504 points" in out
    assert "stage1.1.conv1.kernel" in out and "(stage1.depth > 1)" in out
    code, out, _ = run_cli("show", "--json", str(EXAMPLES / "digits_space.arch"))
    data = json.loads(out)
    assert data["size"] == "inf"
    by_name = {d["name"]: d for d in data["decisions"]}
    assert by_name["width"]["values"] == [16, 24, 32]
    assert by_name["down.conv1.kernel"]["condition"] == ["(one_of1 == 0)"]
    assert data["constraints"] == ["params <= 200k"]
    assert data["objectives"] == [{"sense": "maximize", "metric": "accuracy"}]


def test_sample_is_seeded_and_json(run_cli):
    args = ("sample", str(EXAMPLES / "digits_space.arch"), "-n", "3", "--seed", "5", "--json")
    code, out, _ = run_cli(*args)
    assert code == 0
    rows = json.loads(out)
    assert len(rows) == 3 and len({r["hash"] for r in rows}) == 3
    assert json.loads(run_cli(*args)[1]) == rows
    assert {"params", "macs", "flops", "activations", "depth", "assignment"} <= set(rows[0])


def test_compile_json_costs(run_cli):
    code, out, _ = run_cli("compile", str(EXAMPLES / "resnet50.arch"), "--json")
    assert code == 0
    data = json.loads(out)
    assert data["params"] == 25_557_032
    assert data["flops"] == 2 * data["macs"]
    assert data["depth"] == 50
    assert data["activations"] > 0


def test_compile_summary_table(run_cli):
    code, out, _ = run_cli("compile", str(EXAMPLES / "resnet18.arch"), "--summary")
    assert code == 0
    assert "layer1.0.conv1" in out and "[64, 56, 56]" in out
    assert "params 11,689,512" in out and "depth 18" in out


def test_compile_a_point_with_set_and_assignment_file(run_cli, tmp_path):
    spec = str(EXAMPLES / "digits_space.arch")
    code, out, _ = run_cli("sample", spec, "--seed", "2", "--json")
    values = json.loads(out)[0]["assignment"]
    path = tmp_path / "point.json"
    path.write_text(json.dumps(values))
    code, out, err = run_cli("compile", spec, "--assignment", str(path), "--json")
    assert code == 0, err
    assert json.loads(out)["assignment"] == values
    sets = [f"--set={k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in values.items()]
    code, out2, err = run_cli("compile", spec, *sets, "--json")
    assert code == 0, err
    assert json.loads(out2)["params"] == json.loads(out)["params"]


def test_compile_space_without_assignment_names_missing_decisions(run_cli):
    code, _, err = run_cli("compile", str(EXAMPLES / "digits_space.arch"))
    assert code == 1
    assert "missing decision 'width' (domain choice(16, 24, 32))" in err
    assert "Traceback" not in err


def test_unknown_backend_is_a_user_error(run_cli):
    code, _, err = run_cli("compile", str(EXAMPLES / "resnet18.arch"), "--backend", "tf",
                           "-o", "/dev/null")
    assert code == 1 and "unknown backend 'tf'" in err
