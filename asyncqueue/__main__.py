"""``python -m asyncqueue``: the command line, as the ``asyncqueue`` console script."""

from asyncqueue.cli import main

if __name__ == "__main__":
    main()
