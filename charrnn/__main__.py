"""``python -m charrnn``: the same as the ``charrnn`` command."""

import sys

try:
    from .cli import main
except KeyboardInterrupt:           # Ctrl-C while starting up: no traceback
    print("charrnn: interrupted", file=sys.stderr, flush=True)
    sys.exit(130)

if __name__ == "__main__":
    sys.exit(main())
