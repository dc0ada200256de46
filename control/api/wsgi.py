"""WSGI entry point for gunicorn: ``control.api.wsgi:app``."""

from control import logs
from control.api.app import create_app
from control.settings import Settings

logs.configure()  # masked log lines, gunicorn's own included (docs/secrets.md)
app = create_app(Settings.from_env())
