"""An executed copy is written whole or not at all (``notebooks.write_executed_copy``)."""

from __future__ import annotations

import errno
import io

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output

from larpo_lite.notebooks import write_executed_copy


def _executed(text: str) -> nbformat.NotebookNode:
    cell = new_code_cell("print('hi')", execution_count=1,
                         outputs=[new_output("stream", name="stdout", text=text)])
    return new_notebook(cells=[cell])


def test_a_full_disk_part_way_leaves_the_earlier_copy_and_no_temp_file(tmp_path, monkeypatch):
    dest_dir = tmp_path / "executed"
    nbformat.write(_executed("old run\n"), tmp_path / "01_demo.ipynb")
    first = write_executed_copy(tmp_path / "01_demo.ipynb", dest_dir)
    before = first.read_bytes()
    nbformat.write(_executed("new run\n" * 2000), tmp_path / "01_demo.ipynb")
    real_open = io.open

    class FullDisk:
        """A file that takes half of what it is given, then reports a full disk."""

        def __init__(self, f):
            self.f = f

        def write(self, data):
            self.f.write(data[: len(data) // 2])
            self.f.flush()
            raise OSError(errno.ENOSPC, "No space left on device")

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def __getattr__(self, name):
            return getattr(self.f, name)

    def open_on_a_full_disk(file, mode="r", *args, **kwargs):
        f = real_open(file, mode, *args, **kwargs)
        return FullDisk(f) if any(m in mode for m in "wax") else f

    monkeypatch.setattr(io, "open", open_on_a_full_disk)
    with pytest.raises(OSError, match="No space"):
        write_executed_copy(tmp_path / "01_demo.ipynb", dest_dir)
    monkeypatch.undo()
    assert sorted(p.name for p in dest_dir.iterdir()) == ["01_demo.ipynb"]  # no temp left
    assert first.read_bytes() == before  # the earlier copy, whole and valid
    nbformat.validate(nbformat.read(first, as_version=4))
    again = write_executed_copy(tmp_path / "01_demo.ipynb", dest_dir)  # room again: written
    assert "new run" in again.read_text() and sorted(p.name for p in dest_dir.iterdir()) == ["01_demo.ipynb"]
    ref = tmp_path / "made_by_open"
    ref.write_text("")
    assert again.stat().st_mode & 0o777 == ref.stat().st_mode & 0o777  # not mkstemp's 0600
