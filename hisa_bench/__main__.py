"""`python -m hisa_bench`: the same command line as the `hisa-bench` script."""
from .cli import main

if __name__ == "__main__":
    main()
