"""``python -m benchmarks``: run the suite (see ``--help``)."""
from .suite import main

if __name__ == "__main__":
    main()
