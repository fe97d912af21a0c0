"""The README's Python example runs as written (on a small ONNX CNN, 128-bit parameters)."""

import pathlib
import re

import fixtures

README = pathlib.Path(__file__).resolve().parents[3] / "README.md"


def test_readme_python_example_runs(tmp_path, monkeypatch):
    text = README.read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert blocks, "the README has no Python example"
    code = blocks[0].replace('"/var/tmp/pool"', repr(str(tmp_path / "pool")))
    (tmp_path / "model.onnx").write_bytes(fixtures.small_cnn().SerializeToString())
    monkeypatch.chdir(tmp_path)
    scope = {}
    exec(compile(code, str(README), "exec"), scope)
    assert scope["rep"]["seconds"] > 0
    assert {r["policy"] for r in scope["plan"]["predictions"]} == {"lru", "alpha", "planned"}
