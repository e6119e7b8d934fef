import sys

from b2cal_assets.cli import main

sys.exit(main())
