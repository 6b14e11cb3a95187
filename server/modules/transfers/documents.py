"""Transfer documents as PDF: the transfer letter (案件移送书), the investigation report (案件调查报告)
and the materials list (移送材料清单). Same approach as the case documents: reportlab with the
built-in CID font STSong-Light, ``invariant=1`` so the same facts give the same bytes."""
from __future__ import annotations

import io

from server.modules.cases import documents as case_documents

TITLES = {"transfer_letter": "案件移送书", "investigation_report": "案件调查报告", "materials_list": "移送材料清单"}


def _wrap(text: str, width: int = 38) -> list[str]:
    return [text[i:i + width] for i in range(0, len(text), width)] or [""]


def render(title: str, lines: list[str], footer: str) -> bytes:
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    font = case_documents._font()  # noqa: SLF001 - the one font choice for every document
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, pagesize=A4, invariant=1)
    pdf.setTitle(title)
    width, height = A4
    pdf.setFont(font, 18)
    pdf.drawCentredString(width / 2, height - 70, "商洛市生态环境局")
    pdf.drawCentredString(width / 2, height - 96, title)
    pdf.setFont(font, 11)
    y = height - 130
    for line in lines:
        for chunk in _wrap(line):
            if y < 60:
                pdf.showPage()
                pdf.setFont(font, 11)
                y = height - 60
            pdf.drawString(60, y, chunk)
            y -= 18
    pdf.drawRightString(width - 60, max(y - 30, 40), footer)
    pdf.showPage()
    pdf.save()
    return buffer.getvalue()
