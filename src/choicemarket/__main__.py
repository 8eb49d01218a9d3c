from choicemarket.experiments.cli import main

raise SystemExit(main())
