"""Entrypoints: the `rmdepth` CLI and the modules run with `ray job submit ... -- python -m jobs.<name>`.

Ray is imported only in this package. Modules here keep their top-level imports light (argparse, stdlib) so that
`rmdepth --help` is fast; heavy imports happen inside `run()`.
"""
