"""Prints the `export` lines that make a hand-typed `pulumi` run as this project runs it:
`eval "$(.venv/bin/python tools/pulumi_env.py --stack local)"`. The rules live in
workflow/pulumi_env.py, which make, invoke and the tests use too."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from workflow.pulumi_env import main

if __name__ == "__main__":
    main()
