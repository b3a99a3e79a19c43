"""Executors: traversal of a graph, the leaf wrapper every step runs in, and ``local``."""
