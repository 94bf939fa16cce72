"""`python -m hisa_bench`: the same command line as the `hisa-bench` script."""
from .cli import script

if __name__ == "__main__":
    script()
