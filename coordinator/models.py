"""Import every model so that ``Base.metadata`` knows all tables (for Alembic and tests)."""

from coordinator.accounts.models import Account, ApiToken
from coordinator.audit.models import AuditEvent
from coordinator.consensus.models import ConsensusRun, TaskConsensus, WorkerSkill
from coordinator.db import Base
from coordinator.dispatch.models import (
    Assignment,
    DispatchRun,
    RoutingDecision,
    TaskWorker,
    Worker,
)
from coordinator.feedback.models import (
    ModelAgreement,
    PredictionFlag,
    PredictionImport,
    TrainingRun,
)
from coordinator.guidelines.models import (
    GuidelineSegment,
    GuidelineVersion,
    SegmentTranslation,
)
from coordinator.labels.models import IdempotentRequest, Label
from coordinator.mturk.models import (
    MTurkAssignment,
    MTurkBonus,
    MTurkHit,
    MTurkHitSlot,
    MTurkHitType,
    MTurkQualificationSync,
    MTurkSettings,
)
from coordinator.projects.models import Project, Task
from coordinator.quality.models import OverlapStop, ReviewItem, ReviewVerdict, WorkerBlock
from coordinator.webhooks.models import WebhookDelivery
from coordinator.workforces.models import Workforce

__all__ = [
    "Account", "ApiToken", "Assignment", "AuditEvent", "Base", "ConsensusRun", "DispatchRun",
    "GuidelineSegment", "GuidelineVersion", "IdempotentRequest", "Label", "MTurkAssignment",
    "MTurkBonus", "MTurkHit", "MTurkHitSlot", "MTurkHitType", "MTurkQualificationSync",
    "MTurkSettings", "ModelAgreement", "OverlapStop", "PredictionFlag", "PredictionImport", "Project",
    "ReviewItem", "ReviewVerdict", "RoutingDecision", "SegmentTranslation", "Task",
    "TaskConsensus", "TaskWorker", "TrainingRun", "WebhookDelivery", "Worker", "WorkerBlock",
    "WorkerSkill", "Workforce",
]
