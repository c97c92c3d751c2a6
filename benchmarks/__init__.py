"""Speed and memory benchmarks; each module runs as a script and exposes a plain function."""
