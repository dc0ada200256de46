"""WSGI entry point for gunicorn: ``control.api.wsgi:app``."""

from control.api.app import create_app
from control.settings import Settings

app = create_app(Settings.from_env())
