"""The MD layer of viglas, free of jobflow: precision-targeted runs
(:mod:`viglas.md.adaptive`). The integrators and ``run_md`` still live in
:mod:`viglas.workflows.md`."""
