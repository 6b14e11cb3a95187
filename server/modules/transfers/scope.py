"""Who is a party to a transfer and which transfers each office sees: the bureau by its cases'
scope, the receiving offices once the transfer is shown to them (issue 14; docs/security.md §3)."""
from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from server.core import errors
from server.core.access import Principal, Role
from server.modules.cases import operations as cases
from server.modules.cases.models import Case
from server.modules.transfers.models import Transfer, TransferEvent

OutOfScope = errors.error_code("transfer.out_of_scope", 403, "无权查看该移送案件（非移送或接收机关）",
                               "The transfer is not to or from your office")


# What the receiving side sees, and from when. A transfer is the bureau's own business until its
# head approves it and the bureau hands it over: the police see it from the hand-over (衔接办法
# 第6、7条), and the procuratorate from the same moment, when the transfer letter is copied to it
# (抄送, 第6条). Earlier, only what the bureau explicitly shares: a written consultation (会商,
# 第24条) opens the transfer to the office consulted, and a request for the procuratorate's early
# involvement (提前介入, 第4、24条) to the procuratorate. A refusal to transfer is open to the
# procuratorate, which supervises non-transfer and may read the case materials (第4、14条).
# Once shown, a transfer stays shown: its history is append-only.
_SHARED_WITH: dict[str, tuple[str, ...]] = {"police": (), "prosecutor": ("request_early_involvement", "refuse")}


def shown_to(side: str) -> sa.ColumnElement[bool]:
    """SQL condition: the transfer in the query is shown to its ``side`` (police | prosecutor)."""
    event = sa.select(TransferEvent.id).where(TransferEvent.transfer_id == Transfer.id)
    consulted = sa.and_(TransferEvent.action == "consult", TransferEvent.side.in_(("bureau", "head")),
                        TransferEvent.payload["to"].as_string() == side)
    shared = sa.or_(consulted, TransferEvent.action.in_(_SHARED_WITH[side]))
    return sa.or_(Transfer.handed_over_at.is_not(None), event.where(shared).exists())


def _shown(session: Session, transfer: Transfer, side: str) -> bool:
    if transfer.handed_over_at is not None:
        return True
    return bool(session.scalar(sa.select(shown_to(side)).select_from(Transfer).where(Transfer.id == transfer.id)))


def sides(session: Session, principal: Principal, transfer: Transfer) -> set[str]:
    """What the caller is to this transfer: bureau, head (may also act as bureau), police, prosecutor.
    The receiving offices are parties only once the transfer is shown to them (``shown_to``)."""
    role = principal.role
    if principal.kind != "user":
        return set()
    if role == Role.POLICE.value:
        mine = principal.unit_id == transfer.police_unit_id
        return {"police"} if mine and _shown(session, transfer, "police") else set()
    if role == Role.PROSECUTOR.value:
        mine = principal.unit_id == transfer.procuratorate_unit_id
        return {"prosecutor"} if mine and _shown(session, transfer, "prosecutor") else set()
    case = cases.get(session, transfer.case_id)
    level = cases.access(session, principal, case)
    if level == "full":
        return {"bureau", "head"} if role in (Role.SUPERVISOR.value, Role.ADMIN.value) else {"bureau"}
    if level in ("read", "evidence"):
        return {"reader"}
    return set()


def require_visible(session: Session, principal: Principal, transfer: Transfer) -> set[str]:
    found = sides(session, principal, transfer)
    if not found:
        raise OutOfScope(transfer=transfer.id)
    return found


def receiving(principal: Principal) -> bool:
    return principal.role in (Role.POLICE.value, Role.PROSECUTOR.value)


def visible(session: Session, principal: Principal) -> sa.Select[tuple[Transfer]]:
    """Police see transfers to their office, prosecutors those copied to theirs (each once shown to
    them, ``shown_to``), bureau staff their cases'."""
    query = sa.select(Transfer).order_by(Transfer.created_at.desc(), Transfer.id)
    if principal.role == Role.POLICE.value:
        return query.where(Transfer.police_unit_id == principal.unit_id, shown_to("police"))
    if principal.role == Role.PROSECUTOR.value:
        return query.where(Transfer.procuratorate_unit_id == principal.unit_id, shown_to("prosecutor"))
    return query.where(Transfer.case_id.in_(cases.visible(session, principal).with_only_columns(Case.id)
                                            .order_by(None)))
