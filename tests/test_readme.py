"""The README's example runs as written."""

import pathlib
import re

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def test_readme_example_runs():
    text = README.read_text()
    example = re.search(r"## Example\n\n```python\n(.*?)```", text, re.S).group(1)
    namespace = {}
    exec(compile(example, "README.md example", "exec"), namespace)
    assert namespace["dw"].shape == namespace["w"].shape
    assert namespace["dy"].shape == namespace["y"].shape
