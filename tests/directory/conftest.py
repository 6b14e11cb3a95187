"""A supervisor and the regions the directory tests use."""
import pytest

from server.core.access import Role
from server.modules.users.models import Region
from tests import factories


@pytest.fixture()
def supervisor(db_session):
    for code, name in (("611000", "商洛市"), ("611002", "商州区"), ("611021", "洛南县")):
        if db_session.get(Region, code) is None:
            db_session.add(Region(code=code, name_zh=name, name_en=name, parent_code=None))
    db_session.flush()
    return factories.UserFactory(role=Role.SUPERVISOR)
