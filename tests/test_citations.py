"""Every citation of a law in the code and its data names a law we know, an article it has and,
where it names an item (项), an item that article has (server/core/data/known_articles.json)."""
from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KNOWN = json.loads((ROOT / "server/core/data/known_articles.json").read_text(encoding="utf-8"))["laws"]
NUMERALS = dict(zip("一二三四五六七八九十", range(1, 11))) | {"十一": 11, "十二": 12, "十三": 13, "十四": 14}
# "行政处罚法 第64条第(六)项", "衔接办法 (2017) 第5、6条", "国务院令第310号 第11条", "第57条第1款第(二)、(三)项"
CITATION = re.compile(r"(?P<law>" + "|".join(map(re.escape, sorted(KNOWN, key=len, reverse=True))) + r")"
                      r"[》\s]*(?:\(\d{4}\)|（\d{4}）)?\s*(?P<cites>第\d+(?:[、–\-]\d+)*条(?:第\d+款)?"
                      r"(?:第?[（(][一二三四五六七八九十]+[）)](?:[、至][（(][一二三四五六七八九十]+[）)])*项?)?"
                      r"(?:[;；、]\s*第\d+(?:[、–\-]\d+)*条(?:第\d+款)?)*)")


def _citations():
    for path in sorted(ROOT.glob("server/**/*")):
        if path.suffix in {".py", ".json", ".html"} and "known_articles" not in path.name:
            text = path.read_text(encoding="utf-8")
            for match in CITATION.finditer(text):
                yield path.relative_to(ROOT), match.group("law"), match.group("cites")


def test_citations_are_found():
    found = list(_citations())
    assert len(found) > 200  # the pattern still reads the code's citations
    assert {law for _, law, _ in found} >= {"行政处罚法", "衔接办法", "国务院令第310号", "法释〔2023〕7号"}


def test_every_cited_article_and_item_exists():
    wrong = []
    for path, law, cites in _citations():
        known = KNOWN[law]
        for article_group in re.finditer(r"第(\d+(?:[、–\-]\d+)*)条", cites):
            for number in map(int, re.split(r"[、–\-]", article_group.group(1))):
                if not 1 <= number <= known["articles"]:
                    wrong.append(f"{path}: {law} {cites}: 第{number}条 (it has {known['articles']})")
        article = re.match(r"第(\d+)条", cites)
        items = [NUMERALS[n] for n in re.findall(r"[（(]([一二三四五六七八九十]+)[）)]", cites)]
        limit = known.get("items", {}).get(article.group(1)) if article else None
        if items and limit is not None and max(items) > limit:
            wrong.append(f"{path}: {law} {cites}: item {max(items)} (第{article.group(1)}条 has {limit})")
    assert not wrong, "\n".join(wrong)


def test_the_corrected_citations_stay_corrected():
    """The hearing no-show waiver is 第64条第(六)项; 第57条(四) is a transfer to the judicial organs,
    not a drop; the annual plan is not 行政处罚法 第51条 (that is 简易程序)."""
    cited = {(law, cites) for _, law, cites in _citations()}
    assert ("行政处罚法", "第64条第(六)项") in cited
    assert ("行政处罚法", "第64条第(八)项") not in cited
    assert not any(law == "行政处罚法" and cites.startswith("第57条") and "(四)" in cites for law, cites in cited)
