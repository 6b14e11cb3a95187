"""Imports every domain's models so that SQLAlchemy metadata (and Alembic) sees all tables."""
from server.modules.audit import models as audit  # noqa: F401
from server.modules.devices import models as devices  # noqa: F401
from server.modules.directory import models as directory  # noqa: F401
from server.modules.disclosure import models as disclosure  # noqa: F401
from server.modules.draws import models as draws  # noqa: F401
from server.modules.roster import models as roster  # noqa: F401
from server.modules.inspections import models as inspections  # noqa: F401
from server.modules.users import models as users  # noqa: F401
from server.modules.sync import models as sync  # noqa: F401
from server.modules.evidence import models as evidence  # noqa: F401
from server.modules.cases import models as cases  # noqa: F401
from server.modules.deadlines import models as deadlines  # noqa: F401
from server.modules.discretion import models as discretion  # noqa: F401
from server.modules.reviews import models as reviews  # noqa: F401
from server.modules.transfers import models as transfers  # noqa: F401
