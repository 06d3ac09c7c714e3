from persona_server.cli import main

raise SystemExit(main())
