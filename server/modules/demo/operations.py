"""Demo data, loaded once: a second load changes nothing. People and enterprises are seeded (the
same every time); draws, inspections, cases and evidence are made through the real operations, so
their ids, seeds and keys differ from one fresh database to the next."""
from __future__ import annotations

import datetime as dt
import hashlib
import random
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from server.core.access import Role
from server.core.calendar import local_today
from server.core.canonical import canonical_json
from server.modules.audit import operations as audit
from server.modules.directory import uscc
from server.modules.directory.models import PermitClass, RiskClass, Target
from server.modules.users import operations as users
from server.modules.users.models import Agency, AgencyKind, Certificate, CertificateStatus, Unit, UnitKind, User

DEMO_PASSWORD = "Qinling-2026"
BUREAU = "商洛市生态环境局"

# code, county name, pinyin, approximate WGS-84 centre (lat, lon)
COUNTIES = [
    ("611002", "商州区", "Shangzhou", 33.869, 109.940),
    ("611021", "洛南县", "Luonan", 34.090, 110.148),
    ("611022", "丹凤县", "Danfeng", 33.695, 110.327),
    ("611023", "商南县", "Shangnan", 33.531, 110.882),
    ("611024", "山阳县", "Shanyang", 33.532, 109.882),
    ("611025", "镇安县", "Zhen'an", 33.423, 109.153),
    ("611026", "柞水县", "Zhashui", 33.686, 109.114),
]
SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗梁宋郑谢韩唐冯于董萧程曹袁邓许傅沈曾彭吕苏卢蒋蔡贾丁魏薛叶阎"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰涛明超秀霞平刚桂英华建国志文斌鹏辉宇浩凯丹"
PREFIXES = ["秦岭", "丹江", "商山", "金钱河", "洛源", "乾佑", "旬河", "鹤城", "凤冠", "龙驹", "牧护关", "月亮湾",
            "仙娥", "闯王", "金丝峡", "天竺", "营盘", "终南", "蟒岭", "流岭"]
INDUSTRIES = [("矿业", "有色金属矿采选"), ("建材", "建筑材料制造"), ("水泥", "水泥制造"), ("化工", "化学原料制造"),
              ("食品", "食品制造"), ("药业", "中药饮片加工"), ("冶炼", "有色金属冶炼"), ("养殖", "牲畜饲养"),
              ("石材", "石材加工"), ("污水处理", "污水处理"), ("电镀", "金属表面处理"), ("砖瓦", "砖瓦制造"),
              ("钒业", "钒冶炼"), ("钼业", "钼矿采选"), ("医院", "卫生"), ("汽修", "汽车修理")]
STREETS = ["工业园区", "产业园", "镇", "街道", "村"]
CREDIT = ["环保诚信", "环保良好", "环保警示", "环保不良", None]


@dataclass
class DemoResult:
    loaded: bool
    logins: list[tuple[str, str, str]]  # username, role, what they are
    targets: int


def _person(rng: random.Random, used: set[str]) -> str:
    while True:
        name = rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2))))
        if name not in used:
            used.add(name)
            return name


def load(session: Session, *, seed: int = 611000, targets: int = 2000, inspectors: int = 60) -> DemoResult:
    if session.scalar(sa.select(Agency.id).where(Agency.name_zh == BUREAU)) is not None:
        return DemoResult(False, demo_logins(session), session.scalar(sa.select(sa.func.count(Target.id))) or 0)
    rng = random.Random(seed)
    today = local_today()
    password_hash = users.hash_password(DEMO_PASSWORD)

    bureau = Agency(kind=AgencyKind.ECOLOGY_BUREAU, name_zh=BUREAU, name_en="Shangluo Ecology and Environment Bureau",
                    region_code="611000")
    police = Agency(kind=AgencyKind.PUBLIC_SECURITY, name_zh="商洛市公安局", name_en="Shangluo Public Security Bureau",
                    region_code="611000")
    procuratorate = Agency(kind=AgencyKind.PROCURATORATE, name_zh="商洛市人民检察院",
                           name_en="Shangluo People's Procuratorate", region_code="611000")
    session.add_all([bureau, police, procuratorate])
    detachment = Unit(agency=bureau, kind=UnitKind.DETACHMENT, code="商洛支队", name_zh="商洛市生态环境保护综合执法支队",
                      name_en="Shangluo Environmental Enforcement Detachment", region_code="611000")
    legal_office = Unit(agency=bureau, kind=UnitKind.OFFICE, code="商洛法规", name_zh="商洛市生态环境局法规科",
                        name_en="Shangluo Bureau Legal Affairs Office", region_code="611000")
    police_unit = Unit(agency=police, kind=UnitKind.OFFICE, code="商洛公安环侦",
                       name_zh="商洛市公安局食品药品环境犯罪侦查支队",
                       name_en="Shangluo Food, Drug and Environmental Crime Investigation Detachment",
                       region_code="611000")
    prosecutor_unit = Unit(agency=procuratorate, kind=UnitKind.OFFICE, code="商洛检八", name_zh="商洛市人民检察院第八检察部",
                           name_en="Shangluo Procuratorate 8th Department (public-interest litigation)",
                           region_code="611000")
    brigades = [Unit(agency=bureau, kind=UnitKind.BRIGADE, code=name[:2],
                     name_zh=f"商洛市生态环境保护综合执法支队{name}大队",
                     name_en=f"{pinyin} Enforcement Brigade", region_code=code)
                for code, name, pinyin, _, _ in COUNTIES]
    session.add_all([detachment, legal_office, police_unit, prosecutor_unit, *brigades])
    session.flush()

    logins: list[tuple[str, str, str]] = []
    names: set[str] = set()

    def person(username: str, role: Role, unit: Unit, what: str) -> User:
        user = users.create_user(session, username=username, display_name=_person(rng, names), role=role,
                                 unit_id=unit.id, region_code=unit.region_code)
        user.password_hash = password_hash
        logins.append((username, role.value, what))
        return user

    person("admin", Role.ADMIN, detachment, "系统管理员 / administrator")
    person("supervisor", Role.SUPERVISOR, detachment, "支队负责人 / detachment supervisor")
    for unit, (code, _, pinyin, _, _) in zip(brigades, COUNTIES, strict=True):
        person(f"supervisor.{pinyin.lower().replace(chr(39), '')}", Role.SUPERVISOR, unit, f"{unit.name_zh} 负责人")
    for i in (1, 2):
        reviewer = person(f"reviewer{i}", Role.LEGAL_REVIEWER, legal_office, "法制审核人员 / legal reviewer")
        users.add_legal_qualification(session, reviewer, kind="法律职业资格证书", number=f"A2016611000{i:05d}",
                                      obtained_on=dt.date(2016 + i, 9, 1))
    person("prosecutor", Role.PROSECUTOR, prosecutor_unit, "检察官 / prosecutor")
    person("police", Role.POLICE, police_unit, "民警 / police officer")

    units = [detachment] + brigades
    cert_no = 0
    for i in range(inspectors):
        unit = units[i % len(units)]
        inspector = person(f"inspector{i + 1:02d}", Role.INSPECTOR, unit, f"执法人员 / inspector, {unit.name_zh}")
        cert_no += 1
        start = today - dt.timedelta(days=rng.randint(200, 1500))
        cert = Certificate(user=inspector, number=f"陕{unit.region_code}{2020 + cert_no % 6}{cert_no:05d}",
                           issuer="陕西省人民政府", scope="生态环境保护综合行政执法",
                           valid_from=start, valid_until=start + dt.timedelta(days=6 * 365))
        if i % 17 == 5:  # a few certificates have lapsed
            cert.valid_until = today - dt.timedelta(days=rng.randint(5, 120))
            cert.valid_from = cert.valid_until - dt.timedelta(days=6 * 365)
        if i == 33:
            cert.status = CertificateStatus.SUSPENDED
            cert.status_reason = "暂扣：待核查 / suspended pending review"
        session.add(cert)
    for unit, (_, _, pinyin, _, _) in zip(brigades, COUNTIES, strict=True):
        person(f"auxiliary.{pinyin.lower().replace(chr(39), '')}", Role.AUXILIARY, unit, "协管员 / auxiliary")
    session.flush()

    count = _load_targets(session, rng, targets)
    _load_sampling(session, detachment.id, created_by=session.scalar(sa.select(User.id).where(User.username == "supervisor")),
                   approved_by=session.scalar(sa.select(User.id).where(User.username == "admin")), year=today.year)
    from server.modules.draws import demo as demo_draws

    demo_draws.load(session, local_today())
    from server.modules.cases import demo as demo_cases

    demo_cases.load(session, today)
    from server.modules.transfers import demo as demo_transfers

    demo_transfers.load(session)
    from server.modules.inspections import demo as demo_inspections

    demo_inspections.load(session, local_today())
    return DemoResult(True, logins, count)


def _load_sampling(session: Session, unit_id: int, *, created_by: int | None, approved_by: int | None, year: int) -> None:
    """Default sampling rules (data, with sources), the sampling-item list and an approved plan."""
    from server.modules.disclosure.models import SamplingItem
    from server.modules.draws import rules
    from server.modules.draws.models import AnnualPlan, PlanStatus

    rules.load_defaults(session)
    session.add_all([
        SamplingItem(code="SL-EE-001", name="排污许可证执行情况检查", legal_basis="排污许可管理条例 第25条、第33–34条",
                     implementing_body="商洛市生态环境局", content="许可排放浓度与排放量、自行监测、环境管理台账、执行报告",
                     method="双随机抽查，现场检查与非现场核查结合"),
        SamplingItem(code="SL-EE-002", name="污染防治设施运行情况检查", legal_basis="中华人民共和国环境保护法 第24条、第42条",
                     implementing_body="商洛市生态环境局", content="污染防治设施是否正常运行、有无偷排漏排",
                     method="双随机抽查，现场检查"),
    ])
    assert created_by is not None and approved_by is not None
    session.add(AnnualPlan(year=year, unit_id=unit_id, title=f"{year}年度生态环境执法现场检查计划（示例）",
                           planned={"key": 60, "general": 240, "special": 30}, cap_per_enterprise=2,
                           basis="排污许可管理条例 第25条；按省、市确定的比例（示例数据）", status=PlanStatus.APPROVED,
                           created_by=created_by, approved_by=approved_by, approved_at=dt.datetime.now(dt.UTC)))
    session.flush()


def _load_targets(session: Session, rng: random.Random, n: int) -> int:
    rows, used_names, used_codes = [], set(), set()
    for i in range(n):
        code, county, _, lat0, lon0 = COUNTIES[i % len(COUNTIES)] if i < 70 else rng.choice(COUNTIES)
        short, industry = rng.choice(INDUSTRIES)
        name = f"商洛{rng.choice(PREFIXES)}{short}有限公司"
        if name in used_names:
            name = f"{county}{rng.choice(PREFIXES)}{short}{i}号厂"
        used_names.add(name)
        while True:
            credit_code = uscc.complete("91" + code + "MA" + "".join(rng.choice(uscc.ALPHABET) for _ in range(7)))
            if credit_code not in used_codes:
                used_codes.add(credit_code)
                break
        roll = rng.random()
        risk = RiskClass.KEY if roll < 0.06 else RiskClass.SPECIAL if roll < 0.09 else RiskClass.GENERAL
        permit = (PermitClass.KEY if risk is RiskClass.KEY else
                  rng.choice([PermitClass.SIMPLIFIED, PermitClass.REGISTRATION, PermitClass.NONE]))
        rows.append({
            "uscc": credit_code, "name": name, "region_code": code,
            "address": f"陕西省商洛市{county}{rng.choice(PREFIXES)}{rng.choice(STREETS)}{rng.randint(1, 300)}号",
            "lat": round(lat0 + rng.uniform(-0.15, 0.15), 6), "lon": round(lon0 + rng.uniform(-0.15, 0.15), 6),
            "industry": industry, "risk_class": risk, "permit_class": permit,
            "permit_number": f"{credit_code}001{rng.choice('PUVQ')}" if permit is not PermitClass.NONE else None,
            "positive_list": (on_list := risk is not RiskClass.SPECIAL and rng.random() < 0.1),
            "positive_list_since": dt.date(2024, 3, 1) if on_list else None,
            "positive_list_basis": "两年内无环境违法记录，在线监测联网且稳定达标（示例）" if on_list else None,
            "credit_rating": rng.choice(CREDIT), "version": 1,
        })
    session.execute(sa.insert(Target), rows)
    digest = hashlib.sha256(b"".join(canonical_json({**row, "risk_class": row["risk_class"].value,
                                                     "permit_class": row["permit_class"].value,
                                                     "positive_list_since": str(row["positive_list_since"] or "")})
                                     for row in rows)).hexdigest()
    audit.record(session, "demo:directory:imported", subjects={"directory": "targets"},
                 payload={"rows": n, "sha256": digest, "source": "enforce demo load"})
    return n


def demo_logins(session: Session) -> list[tuple[str, str, str]]:
    shown = ["admin", "supervisor", "supervisor.shangzhou", "reviewer1", "reviewer2", "prosecutor", "police",
             "inspector01", "inspector02", "auxiliary.shangzhou"]
    found = {u.username: u for u in session.scalars(sa.select(User).where(User.username.in_(shown)))}
    return [(name, found[name].role.value, found[name].unit.name_zh) for name in shown if name in found]
