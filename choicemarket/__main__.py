from choicemarket.cli import main

raise SystemExit(main())
