"""HTTP, engine and data benchmarks of Le Stats Sportif: `python -m bench` runs them."""
