"""`python -m extproc.cli`: how the demo and the benchmarks start switchyard."""

from extproc.cli.parser import main

raise SystemExit(main())
