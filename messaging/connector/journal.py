"""The connector's journal: what went on the wire and what the SMSC answered, on local disk, ahead of the database.

The database learns an attempt's outcome in batches, a little after the SMSC answered. A connector killed in
between leaves `submitting` attempts that are of three kinds, and only the journal tells them apart:

- never sent (claimed, waiting for the window): safe to send again;
- sent and answered (`submit_sm_resp` read, not yet stored): the outcome is known, with the carrier ids;
- sent, not answered: the outcome is unknown (SMPP has no idempotency token; docs/carriers.md).

One line per event, appended with one `write` each: `S <attempt>` before a message's first `submit_sm`,
`A <attempt> <id> <id>...` for its answer (every part's carrier id) or `E <attempt> <class> <code>` for an
error. A kill -9 loses nothing written (the kernel holds it); a power cut can lose the last second, which
only turns answered attempts into unknown ones. Files rotate at ROTATE_BYTES; a file is deleted once every
attempt started in it is stored (`settled`). Records are ASCII; carrier ids are the SMSC's (no spaces).
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

ROTATE_BYTES = 16 * 1024 * 1024


@dataclass
class Entry:
    """What the journal says of one attempt."""

    sent: bool = False
    carrier_ids: tuple[str, ...] | None = None  # answered: accepted with these ids
    error: tuple[str, str] | None = None  # answered: refused (error class name, code)


@dataclass
class _File:
    path: Path
    fd: int
    size: int = 0
    open_attempts: set[int] = field(default_factory=set)


class Journal:
    """The journal of the connector process `name`, in `directory` (one process per name: see `lock`)."""

    def __init__(self, directory: str | os.PathLike, name: str) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.name = name
        self._lock = threading.Lock()
        self._files: list[_File] = []
        self._file_of: dict[int, _File] = {}

    # -- recovery ---------------------------------------------------------------------------------------

    def read(self) -> dict[int, Entry]:
        """Every attempt the journal files of this process name mention (the files of the run before)."""
        entries: dict[int, Entry] = {}
        for path in self._paths():
            for line in path.read_bytes().decode("ascii", errors="replace").splitlines():
                fields = line.split(" ")
                if len(fields) < 2 or not fields[1].isdigit():
                    continue  # a torn last line
                entry = entries.setdefault(int(fields[1]), Entry())
                if fields[0] == "S":
                    entry.sent = True
                elif fields[0] == "A":
                    entry.sent, entry.carrier_ids = True, tuple("" if cid == "-" else cid for cid in fields[2:])
                elif fields[0] == "E" and len(fields) >= 4:
                    entry.sent, entry.error = True, (fields[2], fields[3])
        return entries

    def clear(self) -> None:
        """Forget the run before (its attempts are stored now) and start a fresh file."""
        with self._lock:
            for held in self._files:
                os.close(held.fd)
            self._files.clear()
            self._file_of.clear()
            for path in self._paths():
                path.unlink()

    # -- writing ------------------------------------------------------------------------------------------

    def sending(self, attempt_id: int) -> None:
        with self._lock:
            held = self._current()
            held.open_attempts.add(attempt_id)
            self._file_of[attempt_id] = held
            self._write(held, f"S {attempt_id}\n")

    def answered(self, attempt_id: int, carrier_ids: tuple[str, ...]) -> None:
        ids = " ".join(cid.replace(" ", "_") or "-" for cid in carrier_ids)
        self._record(attempt_id, f"A {attempt_id} {ids}\n")

    def refused(self, attempt_id: int, error_class: str, code: str) -> None:
        self._record(attempt_id, f"E {attempt_id} {error_class} {code.replace(' ', '_') or '-'}\n")

    def settled(self, attempt_ids: list[int]) -> None:
        """These attempts' outcomes are in the database: a file none of whose attempts is open goes."""
        with self._lock:
            for attempt_id in attempt_ids:
                held = self._file_of.pop(attempt_id, None)
                if held is not None:
                    held.open_attempts.discard(attempt_id)
            current = self._files[-1] if self._files else None
            for held in [f for f in self._files if f is not current and not f.open_attempts]:
                os.close(held.fd)
                held.path.unlink(missing_ok=True)
                self._files.remove(held)

    def close(self) -> None:
        """Close the files; delete those whose attempts are all stored (after a clean stop: every one)."""
        with self._lock:
            for held in self._files:
                os.close(held.fd)
                if not held.open_attempts:
                    held.path.unlink(missing_ok=True)
            self._files.clear()

    # -- internals ----------------------------------------------------------------------------------------

    def _record(self, attempt_id: int, line: str) -> None:
        with self._lock:
            self._write(self._file_of.get(attempt_id) or self._current(), line)

    def _current(self) -> _File:
        if not self._files or self._files[-1].size >= ROTATE_BYTES:
            number = int(self._files[-1].path.suffix.lstrip(".")) + 1 if self._files else 0
            path = self.directory / f"{self.name}.journal.{number}"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            self._files.append(_File(path, fd, os.fstat(fd).st_size))
        return self._files[-1]

    def _write(self, held: _File, line: str) -> None:
        data = line.encode("ascii", errors="replace")
        os.write(held.fd, data)
        held.size += len(data)

    def _paths(self) -> list[Path]:
        return sorted(self.directory.glob(f"{self.name}.journal.*"),
                      key=lambda p: int(p.suffix.lstrip(".")) if p.suffix.lstrip(".").isdigit() else -1)
