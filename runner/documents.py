"""Read the files a user attaches with -f: text, Markdown, HTML (as text), PDF (text layer),
and directories (their text files). Each document keeps its name so answers can cite it.

A file that can't be read is an error naming the file; nothing is sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

from .errors import UserError

TEXT_SUFFIXES = {
    ".txt", ".md", ".markdown", ".rst", ".csv", ".tsv", ".json", ".jsonl", ".yaml", ".yml", ".toml",
    ".ini", ".cfg", ".log", ".py", ".js", ".ts", ".tsx", ".jsx", ".java", ".c", ".h", ".cpp", ".hpp",
    ".go", ".rs", ".rb", ".php", ".sh", ".sql", ".xml", ".tex", ".org", ".adoc", ".swift", ".kt",
    ".scala", ".cs", ".lua", ".r", ".m", ".pl", ".css", ".scss", ".vue", ".svelte", "",
}
HTML_SUFFIXES = {".html", ".htm", ".xhtml"}
SKIP_DIRS = {".git", ".hg", ".svn", "node_modules", "__pycache__", ".venv", "venv", ".tox", "dist", "build"}


@dataclass(frozen=True)
class Document:
    name: str
    text: str
    kind: str = "text"  # text | markdown | html | pdf
    pages: tuple[int, ...] = ()  # pdf: character offset where each page starts


def read_documents(paths: list[str], skipped: list[str] | None = None) -> list[Document]:
    """Read each path; a directory gives its text files. Files of a directory that look like
    text but can't be read are listed in `skipped` ("name: why") so the caller can say so."""
    docs: list[Document] = []
    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_dir():
            found = _read_dir(path, skipped)
            if not found:
                raise UserError(f"{raw}: the directory holds no readable text files")
            docs.extend(found)
        elif path.exists():
            docs.append(read_document(path, raw))
        else:
            raise UserError(f"{raw}: no such file")
    return docs


def _read_dir(root: Path, skipped: list[str] | None = None) -> list[Document]:
    out = []
    for path in sorted(root.rglob("*")):
        if any(part in SKIP_DIRS or part.startswith(".") for part in path.relative_to(root).parts):
            continue
        suffix = path.suffix.lower()
        if not path.is_file() or suffix not in TEXT_SUFFIXES | HTML_SUFFIXES | {".pdf"}:
            continue
        try:
            doc = read_document(path, str(path))
        except UserError as exc:
            # In a directory, skip what isn't text (a named file must be readable), but say
            # so: a skipped PDF is part of the documents the answer will not have read.
            if skipped is not None and not str(exc).endswith("the file is empty"):
                skipped.append(str(exc))
            continue
        out.append(doc)
    return out


def read_document(path: Path, name: str) -> Document:
    suffix = path.suffix.lower()
    if suffix == ".pdf":
        return _read_pdf(path, name)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UserError(f"{name}: cannot read ({exc.strerror or exc})") from None
    if not data.strip():
        raise UserError(f"{name}: the file is empty")
    text = decode_text(data, name)
    if suffix in HTML_SUFFIXES:
        text = html_to_text(text)
        if not text.strip():
            raise UserError(f"{name}: the page has no text")
        return Document(name, text, "html")
    return Document(name, text, "markdown" if suffix in (".md", ".markdown") else "text")


def decode_text(data: bytes, name: str) -> str:
    """Bytes as text, or one line saying why not: the one check for files and standard input."""
    if b"\x00" in data[:8192]:
        raise UserError(f"{name}: looks like a binary file, not text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UserError(f"{name}: not UTF-8 text") from None


def _read_pdf(path: Path, name: str) -> Document:
    import logging

    from pypdf import PdfReader  # loaded only for PDFs

    logging.getLogger("pypdf").setLevel(logging.ERROR)  # its warnings about odd files are noise here
    if not path.is_file():
        raise UserError(f"{name}: cannot read (not a file)")
    try:
        reader = PdfReader(str(path))
        if reader.is_encrypted:
            try:
                if not reader.decrypt(""):
                    raise UserError(f"{name}: the PDF is encrypted; decrypt it first")
            except UserError:
                raise
            except Exception:
                raise UserError(f"{name}: the PDF is encrypted; decrypt it first") from None
        pages, offsets, pos = [], [], 0
        for page in reader.pages:
            text = (page.extract_text() or "").strip()
            offsets.append(pos)
            pages.append(text)
            pos += len(text) + 2
    except UserError:
        raise
    except OSError as exc:
        raise UserError(f"{name}: cannot read ({exc.strerror or exc})") from None
    except Exception as exc:  # noqa: BLE001 - pypdf raises many kinds on a damaged file
        raise UserError(f"{name}: not a readable PDF ({type(exc).__name__}: {exc})") from None
    text = "\n\n".join(pages)
    if not text.strip():
        raise UserError(f"{name}: the PDF has no text layer (scanned images need OCR first)")
    return Document(name, text, "pdf", tuple(offsets))


class _TextExtractor(HTMLParser):
    BLOCK = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "section", "article", "pre", "table", "ul", "ol"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style", "noscript", "template"):
            self.skip += 1
        elif tag in self.BLOCK:
            self.parts.append("\n")
            if tag[0] == "h" and tag[1:].isdigit():
                self.parts.append("#" * int(tag[1:]) + " ")

    def handle_endtag(self, tag):
        if tag in ("script", "style", "noscript", "template"):
            self.skip = max(0, self.skip - 1)
        elif tag in self.BLOCK:
            self.parts.append("\n")

    def handle_data(self, data):
        if not self.skip:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    lines = [" ".join(line.split()) for line in "".join(parser.parts).splitlines()]
    out, blank = [], False
    for line in lines:
        if line:
            out.append(line)
            blank = False
        elif not blank and out:
            out.append("")
            blank = True
    return "\n".join(out).strip()
