import sys

from incremental_analytics_local.cli import main

sys.exit(main())
