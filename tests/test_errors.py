"""Bad input: one compiler-style message per error, exit code 1, never a traceback.

Each `fixtures/errors/NAME.arch` is paired with `NAME.expected`, the exact text on stderr.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures" / "errors"
CASES = sorted(p.stem for p in FIXTURES.glob("*.arch"))
LOCATED = re.compile(r"^\S+:\d+:\d+: error: ", re.M)


@pytest.mark.parametrize("name", CASES)
def test_error_fixture(name, run_cli, monkeypatch):
    monkeypatch.chdir(FIXTURES)
    code, out, err = run_cli("check", f"{name}.arch")
    assert code == 1
    assert "Traceback" not in err
    assert err == (FIXTURES / f"{name}.expected").read_text()
    # every error is located and quotes its line with carets under it
    assert LOCATED.search(err)
    assert "^" in err


def test_fixture_set_covers_the_issue_list():
    wanted = {"syntax_error", "unknown_op", "unknown_block", "unknown_name", "wrong_type",
              "too_many_args", "residual_shape", "add_shape", "concat_shape", "zero_size",
              "negative_size", "empty_choice", "mixed_choice", "division_by_zero"}
    assert wanted <= set(CASES)


def test_several_errors_reported_together(run_cli, monkeypatch):
    monkeypatch.chdir(FIXTURES)
    _, _, err = run_cli("check", "several_errors.arch")
    assert len(LOCATED.findall(err)) == 3


def _check(run_cli, path: Path) -> str:
    code, _, err = run_cli("check", str(path))
    assert code == 1, err
    assert "Traceback" not in err
    assert LOCATED.search(err), err
    return err


def test_cyclic_import(tmp_path, run_cli):
    (tmp_path / "a.arch").write_text('import "b.arch"\nblock x() { relu }\n')
    (tmp_path / "b.arch").write_text('import "a.arch"\nblock y() { relu }\n')
    (tmp_path / "main.arch").write_text('import "a.arch"\narch m {\n  input x[3, 4, 4]\n  x\n}\n')
    err = _check(run_cli, tmp_path / "main.arch")
    assert "cyclic import: main.arch -> a.arch -> b.arch -> a.arch" in err


def test_import_escaping_the_folder(tmp_path, run_cli):
    spec_dir = tmp_path / "specs"
    spec_dir.mkdir()
    (tmp_path / "outside.arch").write_text("block x() { relu }\n")
    (spec_dir / "main.arch").write_text('import "../outside.arch"\narch m {\n  input x[3, 4, 4]\n}\n')
    err = _check(run_cli, spec_dir / "main.arch")
    assert "leaves the spec's folder" in err
    assert 'import "../outside.arch"' in err


def test_import_of_missing_file(tmp_path, run_cli):
    (tmp_path / "main.arch").write_text('import "nope.arch"\narch m {\n  input x[3, 4, 4]\n}\n')
    err = _check(run_cli, tmp_path / "main.arch")
    assert "cannot find 'nope.arch'" in err


def test_import_of_sibling_file_works(tmp_path, run_cli):
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "blocks.arch").write_text("block twice(c: int) { conv(c, 3) conv(c, 3) }\n")
    (tmp_path / "main.arch").write_text(
        'import "lib/blocks.arch"\narch m {\n  input x[3, 8, 8]\n  twice(4)\n}\n')
    code, out, err = run_cli("check", str(tmp_path / "main.arch"))
    assert code == 0, err
    assert "ok (m: fixed network; 260 params" in out


def test_non_utf8_file(tmp_path, run_cli):
    path = tmp_path / "latin1.arch"
    path.write_bytes("arch a {\n  # caf\xe9\n  input x[3, 4, 4]\n}\n".encode("latin-1"))
    err = _check(run_cli, path)
    assert "latin1.arch:2:8: error: spec is not valid UTF-8: byte 0xe9" in err


def test_ten_megabyte_file(tmp_path, run_cli):
    path = tmp_path / "huge.arch"
    path.write_bytes(b"# padding\n" * (1024 * 1024))
    err = _check(run_cli, path)
    assert "huge.arch:1:1: error: spec is 10.0 MiB; specs are limited to 1 MiB" in err


def test_max_params_rejected_before_any_tensor(tmp_path, run_cli, monkeypatch):
    # 2^20 x 2^20 linear: 1.1e12 parameters. Building it would need 4 TB; the check must
    # fire from the cost pass alone, so poison the torch backend to prove nothing is built.
    path = tmp_path / "giant.arch"
    path.write_text("arch giant {\n  input x[1048576]\n  linear(1048576)\n}\n")
    import archlang.backends as backends

    monkeypatch.setattr(backends, "get_backend", lambda name: pytest.fail("backend was used"))
    code, _, err = run_cli("compile", str(path), "-o", str(tmp_path / "giant.py"))
    assert code == 1
    assert "giant.arch:1:6: error: 'giant' has 1,099,512,676,352 parameters, above the limit " \
           "of 10,000,000,000" in err
    assert not (tmp_path / "giant.py").exists()
    code, _, err = run_cli("check", str(path), "--max-params", "1000")
    assert code == 1 and "above the limit of 1,000" in err


def test_a_spec_never_executes_python(tmp_path, run_cli):
    path = tmp_path / "evil.arch"
    path.write_text('arch a {\n  input x[3, 4, 4]\n  conv(eval("__import__(1)"), 3)\n}\n')
    err = _check(run_cli, path)
    assert "unknown function 'eval'" in err
    path.write_text('arch a {\n  input x[3, 4, 4]\n  conv(__import__("os").system("touch pwned"), 3)\n}\n')
    err = _check(run_cli, path)
    assert "syntax error: unexpected '.'" in err
    assert not (tmp_path / "pwned").exists() and not os.path.exists("pwned")


def test_usage_error_exits_2(run_cli):
    code, _, err = run_cli("compile")
    assert code == 2
    code, _, _ = run_cli("frobnicate", "x.arch")
    assert code == 2


def test_missing_file(run_cli, tmp_path):
    code, _, err = run_cli("check", str(tmp_path / "absent.arch"))
    assert code == 1 and "cannot read" in err and "Traceback" not in err
