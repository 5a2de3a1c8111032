from voxtral.cli import main

raise SystemExit(main())
