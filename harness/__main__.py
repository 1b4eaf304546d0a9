"""``python -m harness`` is the ``rabbit-chaos`` command."""

from harness.cli import app

if __name__ == "__main__":
    app(prog_name="rabbit-chaos")
