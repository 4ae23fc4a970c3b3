"""archlang: a compiler for neural-network architectures and architecture search spaces."""
