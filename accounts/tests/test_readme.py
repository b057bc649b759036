"""The README's roles table is the matrix in accounts/roles.py, not a copy that drifts."""
from pathlib import Path

from accounts.roles import matrix_markdown

README = Path(__file__).resolve().parents[2] / "README.md"


def test_it_documents_the_role_matrix_as_coded():
    text = README.read_text()
    start = text.index("<!-- roles-matrix")
    table = text[text.index("\n", start) + 1 : text.index("<!-- /roles-matrix -->")].strip()
    assert table == matrix_markdown()


def test_it_shows_the_two_commands():
    text = README.read_text()
    quick_start = text[text.index("## Quick start") : text.index("## What is where")]
    assert "make run" in quick_start and "make test" in quick_start
