"""Extension objects, created unbound and initialised in ``create_app``."""
from __future__ import annotations

from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy

from server.core.db import Base
from server.core.http import ContractApi

db = SQLAlchemy(model_class=Base)
migrate = Migrate()
web_api = ContractApi(config_prefix="WEB")
mobile_api = ContractApi(config_prefix="MOBILE")
