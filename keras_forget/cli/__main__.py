"""``python -m keras_forget.cli``."""

import sys

from keras_forget.cli import main

sys.exit(main())
