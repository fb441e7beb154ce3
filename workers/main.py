"""What the `celery` command line loads: `celery -A workers.main worker|beat|flower` runs the app
of the deployment its environment's settings describe. Importing this module builds that app,
which is all the command asks of it; nothing in the platform imports it (`rag worker` and
`rag up` build theirs with `workers.app.create_app`).
"""

from __future__ import annotations

from core.settings import get_settings
from workers.app import create_app

app = create_app(get_settings())
