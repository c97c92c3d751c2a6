from minifusion.cli import main

raise SystemExit(main())
