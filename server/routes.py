"""Where every blueprint is mounted. The access policy for each endpoint is in ``server.policy``."""
from __future__ import annotations

import swagger_ui_bundle
from flask import Flask, send_from_directory

from server.extensions import mobile_api, web_api


def register_routes(app: Flask) -> None:
    from mobile_api import devices as mobile_devices
    from mobile_api import sync as mobile_sync
    from server.core import health
    from server.modules.audit import api as audit_api
    from server.modules.auth import api as auth_api
    from server.modules.devices import api as devices_api
    from server.modules.disclosure import api as disclosure_api
    from server.modules.draws import api as draws_api
    from server.modules.roster import api as roster_api
    from server.modules.directory import api as directory_api
    from server.modules.inspections import api as inspections_api
    from server.modules.sync import api as sync_api
    from server.modules.system import api as system_api
    from server.modules.users import api as users_api
    from server import policy

    for blueprint in (auth_api.blp, users_api.blp, devices_api.blp, inspections_api.blp, system_api.blp,
                      sync_api.blp):
        web_api.register_blueprint(blueprint, url_prefix="/api/v1")
    web_api.register_blueprint(audit_api.blp, url_prefix="/api/v1")
    web_api.register_blueprint(audit_api.public_blp, url_prefix="/api/v1/public")
    for blueprint in (mobile_devices.blp, mobile_sync.blp):
        mobile_api.register_blueprint(blueprint, url_prefix="/mobile/v1")
    for blueprint in (directory_api.blp, roster_api.blp, draws_api.blp, disclosure_api.blp):
        web_api.register_blueprint(blueprint, url_prefix="/api/v1")
    web_api.register_blueprint(disclosure_api.public_blp, url_prefix="/api/v1/public")
    app.register_blueprint(health.blp)
    from mobile_api import media as mobile_media
    from mobile_api import uploads as mobile_uploads
    from server.modules.evidence import api as evidence_api
    from server.modules.evidence import tasks as evidence_tasks

    mobile_api.register_blueprint(mobile_uploads.blp, url_prefix="/mobile/v1")
    mobile_api.register_blueprint(mobile_media.blp, url_prefix="/mobile/v1")
    web_api.register_blueprint(evidence_api.blp, url_prefix="/api/v1")
    evidence_tasks.schedule(app)
    from server.modules.sync import tasks as sync_tasks

    sync_tasks.schedule(app)

    from server.modules.cases import api as cases_api
    from server.modules.discretion import api as discretion_api
    from server.modules.reviews import api as reviews_api

    for blueprint in (cases_api.blp, reviews_api.blp, discretion_api.blp):
        web_api.register_blueprint(blueprint, url_prefix="/api/v1")
    from server.modules.transfers import api as transfers_api

    web_api.register_blueprint(transfers_api.blp, url_prefix="/api/v1")

    @app.get("/static/swagger-ui/<path:filename>")
    def swagger_ui_static(filename: str):  # type: ignore[no-untyped-def]
        """Swagger UI served from the installed package: the docs pages work with no internet."""
        return send_from_directory(swagger_ui_bundle.swagger_ui_path, filename, max_age=86400)

    from server import web

    web.init_app(app)  # the pages; after every API blueprint, which it exempts from CSRF
    policy.install()
