from lofitui.cli import main

raise SystemExit(main())
