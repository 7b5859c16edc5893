from mach_tools.cli import main

raise SystemExit(main())
