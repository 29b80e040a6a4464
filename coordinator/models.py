"""Import every model so that ``Base.metadata`` knows all tables (for Alembic and tests)."""

from coordinator.accounts.models import Account, ApiToken
from coordinator.audit.models import AuditEvent
from coordinator.db import Base
from coordinator.guidelines.models import (
    GuidelineSegment,
    GuidelineVersion,
    SegmentTranslation,
)
from coordinator.projects.models import Project, Task
from coordinator.workforces.models import Workforce

__all__ = [
    "Account", "ApiToken", "AuditEvent", "Base", "GuidelineSegment", "GuidelineVersion",
    "Project", "SegmentTranslation", "Task", "Workforce",
]
