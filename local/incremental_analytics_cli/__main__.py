import sys

from incremental_analytics_cli.cli import main

sys.exit(main())
