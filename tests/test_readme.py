"""The README's Python examples and the docstrings' examples run (and so stay true)."""
import importlib.util
import os
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
    have_distributed = importlib.util.find_spec("distributed") is not None
    namespace = {}
    saved_environment = dict(os.environ)  # distributed's LocalCluster sets OMP_NUM_THREADS=1
    try:
        for block in map(textwrap.dedent, blocks):  # blocks inside list items are indented
            if "import torch" in block and not have_torch:
                continue
            if "distributed" in block and not have_distributed:  # (it brings dask)
                continue
            exec(compile(block, str(README), "exec"), namespace)
    finally:
        os.environ.clear()
        os.environ.update(saved_environment)


@pytest.mark.parametrize("module_name", ["fastsoftmax._softmax", "fastsoftmax._logsumexp",
                                         "fastsoftmax._cross_entropy", "fastsoftmax._top_k",
                                         "fastsoftmax._sample", "fastsoftmax._reference_sample",
                                         "fastsoftmax._threads", "fastsoftmax._config",
                                         "fastsoftmax.reference",
                                         "fastsoftmax._reference_cross_entropy",
                                         "fastsoftmax.dask"])
def test_docstring_examples(module_name):
    import doctest
    import importlib

    if module_name == "fastsoftmax.dask":
        pytest.importorskip("dask.array")
    module = importlib.import_module(module_name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


NUMERICAL = {"softmax", "log_softmax", "logsumexp", "cross_entropy"}


@pytest.mark.parametrize("name", [n for n in __import__("fastsoftmax").__all__ if n != "__version__"])
def test_public_docstrings_are_numpydoc(name):
    """Every public function documents each parameter, its return, and has an example."""
    import inspect

    import fastsoftmax

    function = getattr(fastsoftmax, name)
    doc = inspect.getdoc(function)
    assert doc, f"{name} has no docstring"
    sections = set(re.findall(r"^(\w[\w ]*)\n-{3,}$", doc, flags=re.M))
    parameters = [p for p in inspect.signature(function).parameters if p not in ("self",)]
    if parameters:
        assert "Parameters" in sections, name
        documented = set(re.findall(r"^(\w+) :", doc, flags=re.M))
        assert set(parameters) <= documented, f"{name}: undocumented {set(parameters) - documented}"
    returns_none = inspect.signature(function).return_annotation in (None, "None")
    is_result_type = inspect.isclass(function)  # a result (SampleResult): its fields, no Returns
    assert returns_none or is_result_type or "Returns" in sections or "Yields" in sections, name
    assert "Examples" in sections and ">>> " in doc, name
    if name in NUMERICAL:
        assert {"Notes", "References"} <= sections, name
        assert "Blanchard, D. J. Higham and N. J. Higham" in doc, name


def _signature_text(function):
    """``function``'s parameters as the README writes them: no annotations, ``*`` before keywords."""
    import inspect

    parts, star = [], False
    for parameter in inspect.signature(function).parameters.values():
        if parameter.kind is parameter.KEYWORD_ONLY and not star:
            parts.append("*")
            star = True
        default = parameter.default
        parts.append(parameter.name if default is parameter.empty
                     else f"{parameter.name}={default!r}")
    return ", ".join(parts)


def test_readme_api_headings_match_the_signatures():
    import fastsoftmax

    if not README.exists():
        pytest.skip("README.md is not beside the tests (installed elsewhere)")
    headings = re.findall(r"^### `(\w+)\(([^`]*)\)`", README.read_text(), flags=re.M)
    assert len(headings) >= 5
    for name, parameters in headings:
        if parameters == "...":
            continue
        assert parameters.replace('"', "'") == _signature_text(getattr(fastsoftmax, name)), name


def test_fill_doc_inserts_shared_text_indented_and_refuses_typos():
    """The docstring substitution (fastsoftmax._docs): once per piece, indented as its line."""
    from fastsoftmax._docs import REFERENCES, fill_doc

    def f():
        """Summary.

        References
        ----------
        %(references)s
        """

    assert fill_doc(references=REFERENCES)(f) is f  # no wrapper: nothing added to a call
    assert "        .. [1] P. Blanchard" in f.__doc__
    assert "           evaluation of the log-sum-exp" in f.__doc__
    assert "%(" not in f.__doc__

    def g():
        """No place for it."""

    with pytest.raises(ValueError, match="no place for"):
        fill_doc(references=REFERENCES)(g)

    def h():
        """%(unknown)s"""

    with pytest.raises(KeyError):
        fill_doc(references=REFERENCES)(h)
