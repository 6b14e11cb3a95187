"""Labels of the web pages in Chinese (first) and English, and the visitor's language choice.

The choice is kept in a cookie so that it works on the public portal and survives sign-in and sign-out.
"""
from __future__ import annotations

from flask import request

LANGUAGES = ("zh", "en")
COOKIE = "lang"

LABELS: dict[str, tuple[str, str]] = {
    "app": ("秦岭移动执法", "Qinling Field"),
    "bureau": ("商洛市生态环境局", "Shangluo Ecology and Environment Bureau"),
    "portal": ("行政执法公示", "Enforcement disclosure"),
    "console": ("执法管理端", "Enforcement console"),
    "switch": ("English", "中文"),
    "sign_in": ("登录", "Sign in"),
    "sign_out": ("退出", "Sign out"),
    "username": ("用户名", "Username"),
    "password": ("密码", "Password"),
    "home": ("首页", "Home"),
    "staff": ("执法人员", "Enforcement staff"),
    "certificate": ("执法证号", "Certificate number"),
    "unit": ("单位", "Unit"),
    "name": ("姓名", "Name"),
    "valid_until": ("有效期至", "Valid until"),
    "sampling": ("抽查事项与计划", "Sampling items and plans"),
    "draws": ("双随机抽取", "Random draws"),
    "draw": ("抽取", "Draw"),
    "decisions": ("行政处罚决定", "Penalty decisions"),
    "audit": ("执法全过程记录检查点", "Audit log checkpoint"),
    "enterprises": ("企业执法记录查询", "Enterprise enforcement history"),
    "search": ("查询", "Search"),
    "status": ("状态", "Status"),
    "actions": ("操作", "Actions"),
    "due": ("到期", "Due"),
    "overdue": ("逾期", "Overdue"),
    "paused": ("中止", "Paused"),
    "none": ("暂无", "None"),
    "review_queue": ("法制审核队列", "Review queue"),
    "review": ("法制审核", "Legal review"),
    "review_history": ("我的审核记录", "My review history"),
    "pass": ("审核通过", "Pass"),
    "return": ("退回", "Return"),
    "opinion": ("审核意见", "Opinion"),
    "reasons": ("退回理由", "Reasons for return"),
    "facts": ("违法事实", "Facts"),
    "evidence": ("证据", "Evidence"),
    "legal_basis": ("法律依据", "Legal basis"),
    "discretion": ("自由裁量计算", "Discretion calculation"),
    "checklist": ("程序检查", "Procedure checklist"),
    "crime_check": ("涉嫌犯罪审查", "Crime-trigger check"),
    "directory": ("检查对象名录库", "Target directory"),
    "import": ("导入", "Import"),
    "roster": ("执法人员名册", "Inspector roster"),
    "rules_plans": ("抽查规则与年度计划", "Sampling rules and plans"),
    "inspections": ("检查任务", "Inspections"),
    "sync": ("同步状态与冲突", "Sync health and conflicts"),
    "deadlines": ("期限看板", "Deadlines"),
    "cases": ("案件", "Cases"),
    "transfers": ("移送案件", "Transferred cases"),
    "download": ("下载", "Download"),
    "verify": ("复核", "Verify"),
    "submit": ("提交", "Submit"),
    "reason": ("理由", "Reason"),
    "error": ("操作未完成", "Not done"),
    "forbidden": ("无权访问该页面", "You may not open this page"),
    "not_found": ("页面不存在", "Page not found"),
    "csrf": ("表单已过期，请刷新页面后重试", "The form has expired; reload the page and try again"),
    "session_expired": ("登录已过期，请重新登录（未提交的意见已保存在本浏览器）",
                        "Your session has expired; sign in again (unsent text is kept in this browser)"),
    "sign_in_first": ("请先登录", "Sign in to continue"),
    "required": ("必填", "required"),
    "saved": ("已保存", "Saved"),
    "previous": ("上一页", "Previous"),
    "next": ("下一页", "Next"),
    "package": ("证据包", "Evidence package"),
    "acknowledge": ("签收", "Acknowledge"),
    "progress": ("进度", "Progress"),
    "year": ("年度", "Year"),
    "title": ("名称", "Title"),
    "planned": ("计划检查次数", "Planned inspections"),
    "cap": ("每家企业每年上限", "Cap per enterprise per year"),
    "author": ("编制人", "Drafted by"),
    "plan_draft": ("草稿", "Draft"),
    "plan_approved": ("已批准", "Approved"),
    "risk_key": ("重点排污单位", "Key dischargers"),
    "risk_general": ("一般排污单位", "General dischargers"),
    "risk_special": ("特殊监管对象", "Special supervision"),
    "level": ("抽查层级", "Level"),
    "level_city": ("市级", "City"),
    "level_county": ("县区级", "County"),
    "region": ("行政区划", "Region"),
    "category": ("监管类别", "Category"),
    "basis": ("计算方式", "Basis"),
    "basis_percent": ("比例（%）", "Percent"),
    "basis_ratio": ("每名执法人员对象数", "Targets per inspector"),
    "basis_fixed": ("固定数量", "Fixed count"),
    "value": ("数值", "Value"),
    "period": ("周期", "Period"),
    "period_month": ("每月", "Monthly"),
    "period_quarter": ("每季度", "Quarterly"),
    "period_year": ("每年", "Yearly"),
    "effective": ("生效期间", "In force"),
    "source": ("来源", "Source"),
    "basis_text": ("依据 / 报备情况", "Legal basis / filing"),
    "import_queued": ("排队中", "Queued"),
    "import_running": ("正在导入", "Importing"),
    "import_applied": ("已导入", "Imported"),
    "import_rejected": ("有错误行，未导入", "Invalid rows, nothing imported"),
    "import_failed": ("导入失败", "Failed"),
    "package_queued": ("排队中", "Queued"),
    "package_building": ("正在生成", "Building"),
    "package_done": ("已生成", "Done"),
    "package_failed": ("生成失败", "Failed"),
}


def current() -> str:
    lang = request.cookies.get(COOKIE, "zh")
    return lang if lang in LANGUAGES else "zh"


def t(key: str) -> str:
    """The label in the visitor's language; an unknown key shows itself so a missing label is visible."""
    pair = LABELS.get(key)
    if pair is None:
        return key
    return pair[0] if current() == "zh" else pair[1]


def pick(zh: str | None, en: str | None) -> str:
    """Choose between two texts (a domain error's message_zh/message_en, a unit's name_zh/name_en)."""
    first, second = (zh, en) if current() == "zh" else (en, zh)
    return first or second or ""
