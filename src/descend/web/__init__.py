"""The lab in a browser: ``descend serve`` starts a FastAPI app with one page.

``create_app(limits=Limits(...))`` builds the app (see :mod:`descend.web.app`
for the endpoints); :func:`descend.cli.serve.register` adds the ``serve``
command to a Typer app. The page (``static/``) only draws: every number it
shows comes from the library through the JSON API.
"""

from .app import Limits, create_app

__all__ = ["Limits", "create_app"]
