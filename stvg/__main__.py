"""``python -m stvg``: the command line (also what ``torchrun -m stvg train ...`` runs)."""

from stvg.cli import main

if __name__ == "__main__":
    main()
