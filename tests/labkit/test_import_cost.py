"""Importing the lab must not build jsonschema's IRI parser: it costs every chapter kernel ~2 s."""

import subprocess
import sys


def test_plots_import_skips_the_iri_parser_and_jsonschema_still_validates():
    code = (
        "import sys, labkit.plots, jsonschema;"
        "jsonschema.validate({'a': 1}, {'type': 'object'});"
        "print(sys.modules.get('rfc3987_syntax') is None, 'nbformat' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "True"], out.stdout + out.stderr
