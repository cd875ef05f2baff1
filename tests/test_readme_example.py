"""The README's Python example runs as written (through the real code paths)."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.slow
def test_readme_python_example_runs(capsys):
    text = README.read_text()
    block = re.search(r"<!-- example:start -->\s*```python\n(.*?)```\s*<!-- example:end -->", text, re.S)
    assert block, "README lost its example block"
    namespace: dict = {}
    exec(compile(block.group(1), "README example", "exec"), namespace)
    result = namespace["result"]
    space = namespace["space"]
    assert space.from_string(result.final_genotype["arch"]) == tuple(result.final_genotype["choices"])
    assert "MFLOPs" in capsys.readouterr().out
