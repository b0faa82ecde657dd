"""`python -m simsearch.bench` = `simsearch bench`."""

from simsearch.bench.run import main

raise SystemExit(main())
