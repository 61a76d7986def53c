"""The README's usage example runs as written."""

import re
from pathlib import Path


def test_readme_usage_example_runs():
    text = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    usage = text.split("## Usage", 1)[1]
    code = re.search(r"```python\n(.*?)```", usage, re.S).group(1)
    namespace: dict = {}
    exec(compile(code, "README.md#usage", "exec"), namespace)
    assert tuple(namespace["y"].shape) == (8, 128, 37, 37)
    assert len(namespace["replaced"]) == 1
