"""Entry script for Kamailio's app_python3 (``modparam("app_python3", "load", ...)``).

Kamailio embeds Debian's libpython 3.11 and starts with Debian's standard library
(``PYTHONHOME=/usr``). The project and its dependencies live in the stack's virtualenv, built
from the same ``/usr/bin/python3``; this script puts that venv's site-packages on ``sys.path``
(``site.addsitedir`` also runs its ``.pth`` files, which is how an editable install is found),
then hands Kamailio the routing object. Keep it dependency-free: nothing is importable yet.
"""

import os
import site
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))


def _venv_site_packages() -> str:
    configured = os.environ.get("SIPIO_SITE_PACKAGES")
    if configured:
        return configured
    # Fallback for a checkout with its venv at <repo>/.venv.
    version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    return os.path.join(os.path.dirname(_HERE), ".venv", "lib", version, "site-packages")


# app_python3 puts the script's own directory first on sys.path; modules of this package must
# be imported as ``kemi.*``, never as top-level names that could shadow the standard library.
if _HERE in sys.path:
    sys.path.remove(_HERE)
site.addsitedir(_venv_site_packages())

from kemi.routing import Router  # noqa: E402  (importable only after addsitedir)


def mod_init() -> Router:
    """Called once in Kamailio's main process, before it forks the workers."""
    return Router.from_env()
