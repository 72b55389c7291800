"""Test documents: long text whose size the fakes' tokenizer and runner's estimator agree on
(short common words, as in real prose), and small PDFs written by hand."""

from __future__ import annotations

import io
import random

from tests.fakes.tokens import count_tokens

WORDS = ("the plan for each site is to cut cost and risk but our team has to move fast when we see "
         "new data from all the shop floor").split()


def make_doc(tokens: int, seed: int = 1, heading_every: int = 8, marker: str = "") -> str:
    """Markdown of about `tokens` tokens (fake count): '## Part N' headings over paragraphs."""
    rng = random.Random(seed)
    parts: list[str] = []
    n = p = 0
    while n < tokens:
        if p % heading_every == 0:
            h = f"## Part {p // heading_every + 1}"
            parts.append(h)
            n += count_tokens(h)
        sents = []
        for _ in range(rng.randint(3, 6)):
            sents.append(" ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 14))).capitalize() + ".")
        para = " ".join(sents)
        if marker and p == 0:
            para = f"{marker} {para}"
        parts.append(para)
        n += count_tokens(para)
        p += 1
    return "\n\n".join(parts) + "\n"


def _pdf_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def make_pdf(pages: list[str]) -> bytes:
    """A minimal valid PDF with one text line per line of each page (Helvetica, WinAnsi)."""
    n = len(pages)
    objs = [b"<< /Type /Catalog /Pages 2 0 R >>",
            f"<< /Type /Pages /Kids [{' '.join(f'{4 + 2 * i} 0 R' for i in range(n))}] /Count {n} >>".encode(),
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"]
    for i, text in enumerate(pages):
        lines = " ".join(f"({_pdf_escape(line)}) Tj T*" for line in text.split("\n"))
        stream = f"BT /F1 10 Tf 12 TL 40 780 Td {lines} ET".encode("latin-1")
        objs.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> "
                    f"/Contents {5 + 2 * i} 0 R >>".encode())
        objs.append(f"<< /Length {len(stream)} >>\nstream\n".encode() + stream + b"\nendstream")
    out = b"%PDF-1.4\n"
    offsets = []
    for i, obj in enumerate(objs, 1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n".encode() + obj + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objs) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += f"trailer\n<< /Size {len(objs) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return out


def encrypt_pdf(data: bytes, password: str = "secret") -> bytes:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(data)))
    writer.encrypt(password, algorithm="RC4-128")
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()
