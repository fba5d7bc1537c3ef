"""The README's Python examples and the docstrings' examples run (and so stay true)."""
import importlib.util
import pathlib
import re
import textwrap

import pytest

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"


def test_readme_examples_run():
    if not README.exists():
        pytest.skip("README.md is not beside the tests (installed elsewhere)")
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "no python examples found"
    have_torch = importlib.util.find_spec("torch") is not None
    namespace = {}
    for block in map(textwrap.dedent, blocks):  # blocks inside list items are indented
        if "import torch" in block and not have_torch:
            continue
        exec(compile(block, str(README), "exec"), namespace)


@pytest.mark.parametrize("module_name", ["fastsoftmax._api", "fastsoftmax.reference"])
def test_docstring_examples(module_name):
    import doctest
    import importlib

    module = importlib.import_module(module_name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
