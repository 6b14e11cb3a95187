"""``enforce simulate``: a field exercise against a running server over a lossy link.

Creates demo teams (two inspectors, one device each, on one inspection) through the server's
own operations in the configured database, then every device works offline for ``--days``
days and syncs from the township each evening over a link that drops requests, loses responses
and duplicates deliveries. Prints what arrived, merged and conflicted.
"""
from __future__ import annotations

import collections
import hashlib
import random
import tempfile
from pathlib import Path

import click
from flask.cli import with_appcontext

FIELDS = ["findings", "measures", "production_status", "pollution_facilities", "party_statement"]


@click.command("simulate")
@click.option("--devices", default=20, show_default=True, help="number of field devices (two per team)")
@click.option("--days", default=3, show_default=True, help="days offline in the mountains")
@click.option("--url", default="http://127.0.0.1:5000", show_default=True, help="the running server")
@click.option("--seed", default=611000, show_default=True)
@click.option("--drop", default=0.2, show_default=True, help="share of requests lost on the way")
@click.option("--lose", default=0.2, show_default=True, help="share of responses lost on the way back")
@with_appcontext
def simulate_cli(devices: int, days: int, url: str, seed: int, drop: float, lose: float) -> None:
    """离线执法演练：多台设备离线工作后经不稳定网络同步 / Field exercise: offline work, lossy sync"""
    from server.extensions import db
    from sync import demo
    from sync.client import HttpTransport, LossyTransport, SyncClient, TransportError

    rng = random.Random(seed)
    teams = []
    for _ in range(max(1, devices // 2)):
        teams.append(demo.make_team(db.session, inspectors=2))
    db.session.commit()
    workdir = Path(tempfile.mkdtemp(prefix="enforce-simulate-"))
    clients = []
    partner: dict[str, int] = {}  # device → the teammate present at its captures (行政处罚法 第42条)
    for team in teams:
        for d in team.devices:
            partner[d.device_id] = next(o.user_id for o in team.devices if o.device_id != d.device_id)
            link = LossyTransport(HttpTransport(url, timeout=20), rng, drop=drop, lose=lose, duplicate=0.05)
            clients.append((team.inspection_ids[0], SyncClient(
                str(workdir / f"{d.device_id}.db"), link, d.access_token, d.device_id, private_key=d.private_key,
                rng=rng, backoff_base=0.05, backoff_cap=1.0)))
    for _, client in clients:
        client.full_resync()
    for day in range(1, days + 1):
        for inspection, client in clients:
            if day == 1:
                client.set_status(inspection, "in_progress")
            client.check_in(inspection, 33.4 + rng.random(), 109.1 + rng.random(), rng.uniform(3, 30))
            for i in range(5):
                client.note(inspection, f"第{day}天 现场记录 {i}：{rng.choice(['废水', '废气', '固废', '噪声'])}")
            for i in range(2):
                client.manifest(inspection, kind=rng.choice(["photo", "bodycam"]),
                                sha256=hashlib.sha256(f"{client.device_id}-{day}-{i}".encode()).hexdigest(),
                                size=rng.randint(10**6, 10**9), media_type="video/mp4",
                                second_inspector_id=partner[client.device_id], step="on_site")
            for _ in range(3):
                name = rng.choice(FIELDS)
                client.edit_record(inspection, {name: f"{client.device_id[:8]} 第{day}天：{rng.random():.4f}"})
            if day == days:
                client.set_status(inspection, "completed")
        for _, client in clients:  # evening in the township
            try:
                client.sync()
            except TransportError:
                pass
    for _, client in clients:  # back at the office: a reliable link
        client.transport = client.transport.inner  # type: ignore[attr-defined]
        client.sync()
        client.sync()
    statuses: collections.Counter[str] = collections.Counter()
    enqueued = 0
    for _, client in clients:
        enqueued += int(client._meta("device_seq", "0") or 0)
        statuses.update(r["status"] for r in client.results().values())
    lossy = [c.transport for _, c in clients]
    stats = [c.stats for _, c in clients]
    click.echo(f"devices: {len(clients)}  teams: {len(teams)}  days offline: {days}")
    click.echo(f"operations recorded offline: {enqueued}  acknowledged: {sum(statuses.values())}  "
               f"still in outboxes: {sum(c.outbox_depth() for _, c in clients)}")
    click.echo("results: " + ", ".join(f"{k} {v}" for k, v in sorted(statuses.items())))
    click.echo(f"link: requests {sum(s.requests for s in stats)}, retries {sum(s.retries for s in stats)}, "
               f"resyncs {sum(s.resyncs for s in stats)}")
    click.echo(f"wire: sent {sum(s.bytes_sent for s in stats)} B, received {sum(s.bytes_received for s in stats)} B")
    del lossy
    records = [c.entities("inspection_record") for _, c in clients]
    open_conflicts = sum(r["open_conflicts"] for rec in records for r in rec.values()) // 2
    click.echo(f"open conflicts for supervisors: {open_conflicts}")
