"""The restricted unpickler on metadata pickles as Python 2 wrote them (protocol 2, Python 2 string opcodes)."""
from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

from harness.data.safe_pickle import dump_pickle, load_pickle
from harness.util.errors import DataError


# ---- a tiny assembler for the protocol-2 opcodes Python 2 emits ------------------------------------------------
def py2_str(s: bytes) -> bytes:
    """A Python 2 ``str``: SHORT_BINSTRING (U) below 256 bytes, else BINSTRING (T)."""
    if len(s) < 256:
        return b"U" + bytes([len(s)]) + s
    return b"T" + struct.pack("<i", len(s)) + s


def py2_unicode(s: str) -> bytes:
    data = s.encode("utf-8")
    return b"X" + struct.pack("<I", len(data)) + data  # BINUNICODE


def py2_int(i: int) -> bytes:
    if 0 <= i < 256:
        return b"K" + bytes([i])  # BININT1
    if 0 <= i < 65536:
        return b"M" + struct.pack("<H", i)  # BININT2
    return b"J" + struct.pack("<i", i)  # BININT


def py2_list(items: list[bytes]) -> bytes:
    return b"](" + b"".join(items) + b"e"  # EMPTY_LIST MARK ... APPENDS


def py2_dict(pairs: list[tuple[bytes, bytes]]) -> bytes:
    return b"}(" + b"".join(k + v for k, v in pairs) + b"u"  # EMPTY_DICT MARK ... SETITEMS


def py2_pickle(body: bytes) -> bytes:
    return b"\x80\x02" + body + b"."


def test_filenames_pickle_with_python2_strings(tmp_path: Path):
    keys = [b"002.Laysan_Albatross/Laysan_Albatross_0002_1027", b"caf\xe9/x" , b"L" * 300]
    data = py2_pickle(py2_list([py2_str(k) for k in keys]))
    assert b"T" in data and b"U" in data  # both string opcodes really used
    path = tmp_path / "filenames.pickle"
    path.write_bytes(data)
    assert load_pickle(path) == [k.decode("latin1") for k in keys]


def test_captions_pickle_as_python2_wrote_it(tmp_path: Path):
    train = py2_list([py2_list([py2_int(1), py2_int(2)]), py2_list([py2_int(300), py2_int(70000)])])
    test = py2_list([py2_list([py2_int(3)])])
    ixtoword = py2_dict([(py2_int(0), py2_unicode("<end>")), (py2_int(1), py2_str(b"bird")),
                         (py2_int(2), py2_unicode("wing"))])
    wordtoix = py2_dict([(py2_unicode("<end>"), py2_int(0)), (py2_str(b"bird"), py2_int(1)),
                         (py2_unicode("wing"), py2_int(2))])
    path = tmp_path / "captions.pickle"
    path.write_bytes(py2_pickle(py2_list([train, test, ixtoword, wordtoix])))
    got = load_pickle(path)
    assert got == [[[1, 2], [300, 70000]], [[3]], {0: "<end>", 1: "bird", 2: "wing"},
                   {"<end>": 0, "bird": 1, "wing": 2}]


def test_tuple_and_class_ids(tmp_path: Path):
    path = tmp_path / "class_info.pickle"
    path.write_bytes(py2_pickle(b"(" + py2_int(1) + py2_int(200) + b"t"))  # MARK ... TUPLE
    assert load_pickle(path) == (1, 200)


def test_numpy_arrays_are_admitted(tmp_path: Path):
    path = tmp_path / "arr.pickle"
    arr = np.arange(6, dtype=np.int64).reshape(2, 3)
    path.write_bytes(pickle.dumps([arr, np.int32(4)], protocol=2))
    got = load_pickle(path)
    assert np.array_equal(got[0], arr) and int(got[1]) == 4


def test_tampered_pickle_is_refused_naming_file_and_type(tmp_path: Path):
    path = tmp_path / "filenames.pickle"
    marker = tmp_path / "pwned"
    # GLOBAL os.system, then REDUCE with one string argument: what a malicious re-hosted file would contain
    path.write_bytes(py2_pickle(b"cos\nsystem\n(" + py2_str(f"touch {marker}".encode()) + b"tR"))
    with pytest.raises(DataError) as err:
        load_pickle(path)
    assert str(path) in str(err.value) and "os.system" in str(err.value)
    assert not marker.exists()


def test_other_globals_refused(tmp_path: Path):
    path = tmp_path / "x.pickle"
    path.write_bytes(pickle.dumps(Path("/etc"), protocol=2))
    with pytest.raises(DataError, match="refused to load type pathlib"):
        load_pickle(path)


def test_truncated_pickle_names_file(tmp_path: Path):
    path = tmp_path / "filenames.pickle"
    path.write_bytes(pickle.dumps(["a", "b"], protocol=2)[:-3])
    with pytest.raises(DataError, match="filenames.pickle"):
        load_pickle(path)


def test_dump_writes_protocol_2(tmp_path: Path):
    path = tmp_path / "x.pickle"
    dump_pickle([1, "a"], path)
    assert path.read_bytes()[:2] == b"\x80\x02" and load_pickle(path) == [1, "a"]
