"""Each tool's ``--help`` describes it with its docstring's whole first paragraph (not a line cut mid-sentence)."""

import ast
import os
import subprocess
import sys

import pytest

from kws_tf.cli import doc_summary

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOLS = ["benchmark_runtime", "false_alarm_words", "keyword_confusions", "kfold_gate", "pair_traces",
         "quiet_input_check", "tune_decoder", "tune_detector"]  # the runtime's tools (no TensorFlow to import)


def test_doc_summary_joins_the_first_paragraph_into_one_line():
    doc = "Measure the runtime: real-time factor of the\nlive loop.  Numpy only.\n\n    python x.py \\\n        --a\n"
    assert doc_summary(doc) == "Measure the runtime: real-time factor of the live loop. Numpy only."


@pytest.mark.parametrize("tool", TOOLS)
def test_tool_help_shows_the_whole_first_paragraph(tool):
    path = os.path.join(ROOT, "tools", f"{tool}.py")
    with open(path, encoding="utf-8") as f:
        summary = doc_summary(ast.get_docstring(ast.parse(f.read()), clean=False))
    env = dict(os.environ, COLUMNS="10000")  # argparse wraps at the terminal's width (and inside hyphenated words)
    out = subprocess.run([sys.executable, path, "--help"], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n\n")[1].strip() == summary  # argparse: usage, blank line, description
    assert summary.endswith((".", ")")), summary  # a sentence, not a line cut off in its middle
