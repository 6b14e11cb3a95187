"""The endpoint × role table: every endpoint of the app, and who may call it. One place.

Roles are those of ``server.core.access.Role`` plus ``device`` (a registered phone or tablet
acting for its inspector) and ``public`` (anyone, signed in or not). An endpoint that is not
listed here is refused to everyone; ``tests/test_access_matrix.py`` walks this table against
``app.url_map`` so a new endpoint cannot be forgotten. Scope rules (own unit, own assignment,
transferred case) are applied by the operations on top of this table.
"""
from __future__ import annotations

from server.core.access import ADMIN, ANYONE, BUREAU, DEVICES, MANAGERS, STAFF, allow

FIELD_STAFF = frozenset({"inspector", "auxiliary", "supervisor"})
# Witnesses of a draw who commit and reveal seed secrets: supervisors and legal/discipline observers.
DRAW_PARTIES = MANAGERS | frozenset({"legal_reviewer"})
CASE_HANDLERS = frozenset({"inspector", "supervisor", "admin"})
INSPECTORS = frozenset({"inspector", "auxiliary"})  # inspectors and the auxiliaries who assist them on site
LEGAL_REVIEWERS = frozenset({"legal_reviewer"})
RECEIVERS = frozenset({"police", "prosecutor"})  # receiving side of a transfer
TRANSFER_PARTIES = BUREAU | RECEIVERS

# endpoint: {method (or "*"): roles}
TABLE: dict[str, dict[str, frozenset[str]]] = {
    # infrastructure and documentation
    "health.healthz": {"*": ANYONE},
    # Prometheus: answers only a request bearing ENFORCE_METRICS_TOKEN (404 otherwise); the view checks it
    "metrics.metrics": {"GET": ANYONE},
    "swagger_ui_static": {"*": ANYONE},
    "static": {"*": ANYONE},
    "web-api-docs.openapi_json": {"*": ANYONE},
    "web-api-docs.openapi_swagger_ui": {"*": ANYONE},
    "mobile-api-docs.openapi_json": {"*": ANYONE},
    "mobile-api-docs.openapi_swagger_ui": {"*": ANYONE},
    # staff sign-in
    "auth.Login": {"POST": ANYONE},
    "auth.PasswordChange": {"POST": ANYONE},
    "auth.Logout": {"POST": STAFF},
    "auth.Me": {"GET": STAFF | DEVICES},
    # people, units, regions
    "users.Regions": {"GET": ANYONE},
    "users.Units": {"GET": STAFF},
    "users.Users": {"GET": STAFF, "POST": ADMIN},
    "users.UserDetail": {"GET": STAFF, "PATCH": ADMIN},
    "users.UserSessionsEnd": {"POST": ADMIN},
    "users.UserCertificates": {"POST": MANAGERS},
    "users.CertificateStatus": {"POST": MANAGERS},
    "users.LegalQualifications": {"POST": ADMIN},
    "users.Eligibility": {"GET": STAFF},
    # devices, staff side
    "devices.Devices": {"GET": BUREAU, "POST": MANAGERS},
    "devices.DeviceRevoke": {"POST": BUREAU},
    "devices.DeviceReenrol": {"POST": MANAGERS},
    # inspections
    "inspections.Inspections": {"GET": BUREAU, "POST": MANAGERS},
    "inspections.InspectionDetail": {"GET": BUREAU},
    "inspections.InspectionTeam": {"PUT": MANAGERS},
    "inspections.InspectionCancel": {"POST": MANAGERS},
    # audit log (执法全过程记录); witnesses authenticate cosignatures by their registered key
    # the bureau's own people read the log (less what is sealed for them, e.g. drawn targets before
    # the visit); police and prosecutors verify what a transfer package carries, with its proofs
    "audit.Entries": {"GET": BUREAU},
    "audit.EntryDetail": {"GET": BUREAU},
    "audit.SubjectHistory": {"GET": BUREAU},
    "audit.InclusionProof": {"GET": STAFF},
    "audit.Checkpoints": {"POST": MANAGERS},
    "audit.Witnesses": {"GET": ADMIN, "POST": ADMIN},
    "audit_public.LatestCheckpoint": {"GET": ANYONE},
    "audit_public.CheckpointNote": {"GET": ANYONE},
    "audit_public.Consistency": {"GET": ANYONE},
    "audit_public.Cosignatures": {"POST": ANYONE},
    # target directory (名录库), inspector roster, recusal
    "directory.Targets": {"GET": BUREAU, "POST": MANAGERS},
    "directory.TargetDetail": {"GET": BUREAU, "PATCH": MANAGERS},
    "directory.TargetImport": {"POST": MANAGERS},
    "directory.TargetImports": {"GET": MANAGERS, "POST": MANAGERS},
    "directory.TargetImportDetail": {"GET": MANAGERS},
    "roster.Absences": {"GET": BUREAU, "POST": MANAGERS},
    "roster.AbsenceCancel": {"POST": MANAGERS},
    "roster.Conflicts": {"GET": BUREAU, "POST": BUREAU},
    "roster.ConflictWithdraw": {"POST": MANAGERS},
    "roster.Recusals": {"GET": MANAGERS, "POST": BUREAU},
    "roster.RecusalDecision": {"POST": MANAGERS},
    # sampling rules, annual plans, draws (双随机)
    "draws.SamplingRules": {"GET": BUREAU, "POST": MANAGERS},
    "draws.AnnualPlans": {"GET": BUREAU, "POST": MANAGERS},
    "draws.AnnualPlanApprove": {"POST": MANAGERS},
    "draws.Draws": {"GET": DRAW_PARTIES, "POST": MANAGERS},
    "draws.DrawDetail": {"GET": DRAW_PARTIES},
    "draws.DrawCommitments": {"POST": DRAW_PARTIES},
    "draws.DrawFreeze": {"POST": MANAGERS},
    "draws.DrawPublicValue": {"POST": MANAGERS},
    "draws.DrawReveals": {"POST": DRAW_PARTIES},
    "draws.DrawRun": {"POST": MANAGERS},
    "draws.DrawPublish": {"POST": MANAGERS},
    "draws.DrawDocument": {"GET": MANAGERS},
    "draws.RedrawRequests": {"POST": MANAGERS},
    "draws.RedrawApprove": {"POST": MANAGERS},
    # disclosure (一公开): staff side, then the public API
    "disclosure.SamplingItems": {"GET": BUREAU, "POST": MANAGERS},
    "disclosure.Results": {"POST": MANAGERS},
    "disclosure.Deadlines": {"GET": MANAGERS},
    "disclosure_public.PublicSamplingItems": {"GET": ANYONE},
    "disclosure_public.PublicPlans": {"GET": ANYONE},
    "disclosure_public.PublicResults": {"GET": ANYONE},
    "disclosure_public.PublicDraws": {"GET": ANYONE},
    "disclosure_public.PublicDrawDetail": {"GET": ANYONE},
    "disclosure_public.PublicDrawDocument": {"GET": ANYONE},
    # offline sync, staff side: conflict queue and device health
    "sync.Conflicts": {"GET": MANAGERS},
    "sync.ConflictResolve": {"POST": MANAGERS},
    "sync.SyncDevices": {"GET": MANAGERS},
    # penalty cases (立案 → 归档); scope (unit, handler, joint-case agency) is checked by the operations,
    # and steps reserved to the head (decide, close…) by the view
    "cases.Cases": {"GET": BUREAU, "POST": CASE_HANDLERS},
    "cases.Workflow": {"GET": BUREAU},
    "cases.CaseDetail": {"GET": BUREAU},
    "cases.CaseStep": {"POST": CASE_HANDLERS},
    "cases.CaseHistory": {"GET": BUREAU},
    "cases.CaseDeadlines": {"GET": BUREAU},
    "cases.CaseDocuments": {"GET": BUREAU, "POST": CASE_HANDLERS},
    "cases.CaseDocumentFile": {"GET": BUREAU},
    "cases.DeadlineEvents": {"POST": CASE_HANDLERS},
    "cases.DeadlineDashboard": {"GET": CASE_HANDLERS},
    # legal review of major decisions (法制审核)
    "reviews.ReviewQueue": {"GET": LEGAL_REVIEWERS | ADMIN},
    "reviews.ReviewScreen": {"GET": LEGAL_REVIEWERS | ADMIN},
    "reviews.ReviewDecision": {"POST": LEGAL_REVIEWERS},
    "reviews.ReviewExtend": {"POST": MANAGERS},
    # discretion benchmarks (自由裁量基准)
    "discretion.Benchmarks": {"GET": BUREAU, "POST": ADMIN},
    "discretion.Preview": {"POST": BUREAU},
    # evidence (证据): resumable uploads by devices; staff access is scoped and recorded
    "mobile_uploads.Uploads": {"OPTIONS": ANYONE, "POST": DEVICES},
    "mobile_uploads.UploadResource": {"*": DEVICES},
    "mobile_media.Missing": {"POST": DEVICES},
    "mobile_media.Online": {"POST": DEVICES},
    "evidence.EvidenceList": {"GET": BUREAU},
    "evidence.EvidenceDetail": {"GET": BUREAU},
    "evidence.EvidenceOriginal": {"GET": BUREAU},
    "evidence.EvidenceThumbnail": {"GET": BUREAU},
    "evidence.EvidenceHandovers": {"POST": BUREAU},
    "evidence.HandoverConfirm": {"POST": BUREAU},
    "evidence.ChunkProof": {"GET": BUREAU},
    "evidence.Overdue": {"GET": MANAGERS},
    "evidence.FixityAlerts": {"GET": MANAGERS},
    "evidence.DeletionRequests": {"POST": MANAGERS},
    "evidence.DeletionApprove": {"POST": ADMIN},
    # transfers to the police and procuratorate (行政执法与刑事司法衔接); scope (case, receiving office) and
    # the side that takes each step are checked by the operations
    "transfers.Transfers": {"GET": TRANSFER_PARTIES, "POST": CASE_HANDLERS},
    "transfers.Workflow": {"GET": TRANSFER_PARTIES},
    "transfers.Dashboard": {"GET": TRANSFER_PARTIES},
    "transfers.ReceiverKeys": {"POST": RECEIVERS},
    "transfers.TransferDetail": {"GET": TRANSFER_PARTIES},
    "transfers.TransferStep": {"POST": CASE_HANDLERS | RECEIVERS},
    "transfers.TransferHistory": {"GET": TRANSFER_PARTIES},
    "transfers.TransferDeadlines": {"GET": TRANSFER_PARTIES},
    "transfers.TransferMaterials": {"GET": TRANSFER_PARTIES},
    "transfers.TransferMaterialFile": {"GET": TRANSFER_PARTIES},
    "transfers.TransferEvidence": {"GET": TRANSFER_PARTIES},
    "transfers.TransferEvidenceOriginal": {"GET": TRANSFER_PARTIES},
    "transfers.TransferSummary": {"GET": TRANSFER_PARTIES},
    "transfers.TransferAcknowledgements": {"GET": TRANSFER_PARTIES},
    "transfers.TransferPackages": {"GET": TRANSFER_PARTIES, "POST": CASE_HANDLERS},
    "transfers.CasePackages": {"POST": CASE_HANDLERS},
    "transfers.PackageDetail": {"GET": TRANSFER_PARTIES},
    "transfers.PackageVolume": {"GET": TRANSFER_PARTIES},
    # system
    "system.Deadline": {"GET": STAFF | DEVICES},
    "system.UnconfirmedRules": {"GET": ADMIN},
    # the field app's static files (its data comes only from /mobile/v1)
    "field_app.shell": {"GET": ANYONE},
    "field_app.bare": {"GET": ANYONE},
    "field_app.asset": {"GET": ANYONE},
    # web pages (server/web): the public portal, then the staff console; scope is checked by the operations
    "portal.static": {"GET": ANYONE},
    "portal.home": {"GET": ANYONE},
    "portal.set_language": {"GET": ANYONE},
    "portal.staff": {"GET": ANYONE},
    "portal.sampling": {"GET": ANYONE},
    "portal.draws": {"GET": ANYONE},
    "portal.draw": {"GET": ANYONE},
    "portal.draw_document": {"GET": ANYONE},
    "portal.draw_verifier": {"GET": ANYONE},
    "portal.decisions": {"GET": ANYONE},
    "portal.checkpoint": {"GET": ANYONE},
    "portal.enterprises": {"GET": ANYONE},
    "portal.enterprise": {"GET": ANYONE},
    "console.login": {"GET": ANYONE, "POST": ANYONE},
    "console.password_change": {"POST": ANYONE},
    "console.logout": {"POST": STAFF},
    "console.home": {"GET": STAFF},
    "console.supervisor_home": {"GET": MANAGERS},
    "console.result_publish": {"POST": MANAGERS},
    "console.inspector_home": {"GET": INSPECTORS},
    "console.review_queue": {"GET": LEGAL_REVIEWERS | ADMIN},
    "console.review": {"GET": LEGAL_REVIEWERS | ADMIN},
    "console.review_decide": {"POST": LEGAL_REVIEWERS},
    "console.review_history": {"GET": LEGAL_REVIEWERS},
    "console.directory": {"GET": MANAGERS},
    "console.directory_import": {"POST": MANAGERS},
    "console.directory_import_status": {"GET": MANAGERS},
    "console.roster": {"GET": MANAGERS},
    "console.sampling": {"GET": MANAGERS},
    "console.plan_approve": {"POST": MANAGERS},
    "console.plan_new": {"POST": MANAGERS},
    "console.rule_new": {"POST": MANAGERS},
    "console.draws": {"GET": DRAW_PARTIES},
    "console.draw_new": {"POST": MANAGERS},
    "console.draw": {"GET": DRAW_PARTIES},
    "console.draw_step": {"POST": DRAW_PARTIES},
    "console.redraw_request": {"POST": MANAGERS},
    "console.redraw_approve": {"POST": MANAGERS},
    "console.inspections": {"GET": MANAGERS},
    "console.sync": {"GET": MANAGERS},
    "console.conflict_resolve": {"POST": MANAGERS},
    "console.device_reenrol": {"POST": MANAGERS},
    "console.deadlines": {"GET": MANAGERS},
    "console.cases": {"GET": BUREAU},
    "console.case": {"GET": BUREAU},
    "console.transfers": {"GET": TRANSFER_PARTIES},
    "console.transfer": {"GET": TRANSFER_PARTIES},
    "console.transfer_step": {"POST": CASE_HANDLERS | RECEIVERS},
    "console.transfer_acknowledge": {"POST": frozenset({"prosecutor"})},
    "console.package_build": {"POST": CASE_HANDLERS},
    "console.package": {"GET": TRANSFER_PARTIES},
    "console.package_report": {"GET": TRANSFER_PARTIES},
    # device API
    "mobile_devices.RegisterDevice": {"POST": FIELD_STAFF},
    "mobile_devices.EnrolDevice": {"POST": ANYONE},  # the password is the credential (field app enrolment)
    "mobile_devices.Refresh": {"POST": ANYONE},
    "mobile_devices.DeviceMe": {"GET": DEVICES},
    "mobile_sync.Hello": {"POST": DEVICES},
    "mobile_sync.Package": {"GET": DEVICES},
    "mobile_sync.Changes": {"GET": DEVICES},
    "mobile_sync.Push": {"POST": DEVICES},
}


def install() -> None:
    for endpoint, rules in TABLE.items():
        for method, roles in rules.items():
            allow(endpoint, roles, method)
