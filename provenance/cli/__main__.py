"""``python -m provenance.cli``: the ``provenance`` command."""

import sys

from provenance.cli import main

if __name__ == "__main__":  # importing the module (a walk over every module) runs nothing
    sys.exit(main())
