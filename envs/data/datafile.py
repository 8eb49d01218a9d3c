"""Reading user-supplied data files safely: bounded lines, clear one-line errors.

Every problem with a file (too long a line, a NUL byte, bytes that are not UTF-8, a gzip stream
cut short, a short row, a cell that is not a number or is non-finite or absurdly large) raises
:class:`DataFileError`, a ``ValueError`` whose one-line message starts with the file path and
names the line and, where there is one, the column. Lines are read with a length limit, so a
hostile file (say a small ``.gz`` holding one enormous line) never makes the reader hold more
than ``max_line_bytes`` of it at once.
"""

from __future__ import annotations

import csv
import gzip
import os
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

DEFAULT_MAX_LINE_BYTES = 1 << 22  # 4 MiB: far above any real record of the supported formats
_ROWS_PER_BLOCK = 1 << 16  # CSV rows converted to numbers at once (bounds the string lists)
# gzip raises these for a stream cut short or corrupted (EOFError: "Compressed file ended
# before the end-of-stream marker was reached")
_STREAM_ERRORS = (EOFError, zlib.error, gzip.BadGzipFile)


class DataFileError(ValueError):
    """A data file is unreadable or malformed; the message names the file, line and column."""


def _where(path: str | os.PathLike, line: int | None = None, column: str | None = None) -> str:
    out = str(path)
    if line is not None:
        out += f", line {line}"
    if column is not None:
        out += f", column {column}"
    return out


def read_lines(
    path: str | os.PathLike, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
) -> Iterator[tuple[int, bytes]]:
    """``(line number, raw line)`` for each line of ``path`` (gunzipped if it ends in ``.gz``).

    At most ``max_line_bytes + 1`` bytes of a line are ever read: a longer line, a NUL byte or a
    damaged/truncated gzip stream raises :class:`DataFileError` naming the file and line.
    """
    path = Path(path)
    opener = gzip.open if path.name.endswith(".gz") else open
    number = 0
    try:
        with opener(path, "rb") as f:
            while True:
                line = f.readline(max_line_bytes + 1)
                if not line:
                    return
                number += 1
                if len(line) > max_line_bytes and not line.endswith(b"\n"):
                    raise DataFileError(
                        f"{_where(path, number)}: line longer than {max_line_bytes} bytes "
                        "(the reader's limit; the file is not in the expected format)"
                    )
                if b"\0" in line:
                    raise DataFileError(
                        f"{_where(path, number)}: NUL byte (binary or corrupted file)"
                    )
                yield number, line
    except _STREAM_ERRORS as exc:
        raise DataFileError(
            f"{_where(path, number + 1)}: damaged or truncated gzip stream ({exc})"
        ) from None
    except OSError as exc:
        raise DataFileError(f"{path}: cannot be read ({exc.strerror or exc})") from None


def decode(path: str | os.PathLike, number: int, line: bytes) -> str:
    """``line`` decoded as UTF-8, or :class:`DataFileError` naming the file, line and offset."""
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataFileError(
            f"{_where(path, number)}: not UTF-8 text (byte {exc.start + 1} of the line)"
        ) from None


def numbered_text_lines(
    path: str | os.PathLike, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
) -> Iterator[tuple[int, str]]:
    """``(line number, line)`` of ``path`` as UTF-8 text (bounded and checked as in
    :func:`read_lines`)."""
    for number, line in read_lines(path, max_line_bytes):
        yield number, decode(path, number, line)


def read_text_lines(
    path: str | os.PathLike, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
) -> Iterator[str]:
    """The lines of ``path`` as UTF-8 text (bounded and checked as in :func:`read_lines`)."""
    for _, line in numbered_text_lines(path, max_line_bytes):
        yield line


def read_csv_columns(
    path: str | os.PathLike,
    columns: Sequence[str],
    *,
    null: str,
    strings: Sequence[str] = (),
    max_abs: float = np.inf,
    strip: bool = False,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
) -> dict[str, np.ndarray]:
    """Read-only columns of a CSV file with a header: float64 (a ``null`` cell -> NaN) for each
    of ``columns``, kept as text for those also in ``strings``.

    Every row must have as many fields as the header (a short row, e.g. a file cut mid-row, is
    an error); a numeric cell must parse as a finite number with ``|value| <= max_abs``.
    Errors are :class:`DataFileError` naming the file, line and column.
    """
    columns = tuple(columns)
    rows = csv.reader(read_text_lines(path, max_line_bytes))
    try:
        header = next(rows)
    except StopIteration:
        raise DataFileError(f"{path}: empty file (no header)") from None
    except csv.Error as exc:
        raise DataFileError(f"{_where(path, 1)}: not CSV ({exc})") from None
    if strip:
        header = [h.strip() for h in header]
    missing = [c for c in columns if c not in header]
    if missing:
        raise DataFileError(f"{_where(path, 1)}: header lacks the column(s) {missing}")
    at = [header.index(c) for c in columns]
    width = len(header)
    blocks: dict[str, list[np.ndarray]] = {c: [] for c in columns}
    cells: list[list[str]] = [[] for _ in columns]
    lines: list[int] = []

    def flush() -> None:
        for j, name in enumerate(columns):
            col = np.asarray(cells[j], dtype=str)
            if strip:
                col = np.char.strip(col)
            if name not in strings:
                col = _numbers(path, name, col, lines, null, max_abs)
            blocks[name].append(col)
            cells[j].clear()
        lines.clear()

    try:
        for row in rows:
            if not row:
                continue
            if len(row) != width:
                raise DataFileError(
                    f"{_where(path, rows.line_num)}: {len(row)} fields, the header has {width} "
                    "(a short/long row, or a file cut mid-row)"
                )
            for j, i in enumerate(at):
                cells[j].append(row[i])
            lines.append(rows.line_num)
            if len(lines) == _ROWS_PER_BLOCK:
                flush()
    except csv.Error as exc:
        raise DataFileError(f"{_where(path, rows.line_num)}: not CSV ({exc})") from None
    if lines:
        flush()
    if not blocks[columns[0]]:
        raise DataFileError(f"{path}: no data rows after the header")
    table = {}
    for name in columns:
        values = np.concatenate(blocks[name])
        values.flags.writeable = False
        table[name] = values
    return table


def _numbers(
    path: str | os.PathLike,
    name: str,
    col: np.ndarray,
    lines: list[int],
    null: str,
    max_abs: float,
) -> np.ndarray:
    """Text cells -> float64 (``null`` -> NaN), or DataFileError naming the first bad cell."""
    is_null = col == null
    try:
        values = np.where(is_null, "nan", col).astype(np.float64)
    except ValueError:
        values = None
    if values is not None:
        bad = ~is_null & ~(np.abs(values) <= max_abs)  # catches NaN/inf cells too
        if not bad.any():
            return values
        k = int(np.flatnonzero(bad)[0])
    else:  # locate the cell that does not parse (only on the error path)
        k = next(k for k, c in enumerate(col) if not is_null[k] and not _parses(c))
    cell = str(col[k])
    shown = repr(cell if len(cell) <= 40 else cell[:40] + "...")
    limit = "" if max_abs == np.inf else f" with |value| <= {max_abs:g}"
    raise DataFileError(
        f"{_where(path, lines[k], name)}: {shown} is not a finite number{limit}"
        + (f" or the null marker {null!r}" if null else " or blank")
    )


def _parses(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True
