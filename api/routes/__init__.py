"""One router per concern; `api.app.create_app` mounts them all."""
