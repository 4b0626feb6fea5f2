"""sangja.jsonio reads: every bad document is one JSONError (a ValueError) naming the source
and the position, never SystemError (the C scanner without json.decoder loaded) or
RecursionError; what it accepts is what json accepts, minus NaN and Infinity."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from sangja import jsonio
from sangja.jsonio import MAX_DEPTH, JSONError, load_file, loads

BAD = [
    # text, why, line, column
    ("{", "expecting property name enclosed in double quotes", 1, 2),
    ('{"a" 1}', "expecting ':' delimiter", 1, 6),
    ('{"a":1,}', "expecting property name enclosed in double quotes", 1, 8),
    ("[1 2]", "expecting ',' delimiter", 1, 4),
    ('"abc', "unterminated string starting", 1, 1),
    ("{1:2}", "expecting property name enclosed in double quotes", 1, 2),
    ('"a\x01b"', "invalid control character", 1, 3),
    ('{"a":\n  [1,\n   2,,]}', "expecting a value", 3, 6),
    ("", "expecting a value", 1, 1),
    ("nul", "expecting a value", 1, 1),
    ('{"a":1} x', "extra data after the document", 1, 9),
    ("[NaN]", "NaN is not allowed", None, None),
    ('{"a": -Infinity}', "-Infinity is not allowed", None, None),
    ("[" * 100_000, f"nested deeper than {MAX_DEPTH} levels", None, None),
    ("[" * 5000 + "]" * 5000, f"nested deeper than {MAX_DEPTH} levels", None, None),
    ('{"a":' * (MAX_DEPTH + 1) + "1" + "}" * (MAX_DEPTH + 1),
     f"nested deeper than {MAX_DEPTH} levels", None, None),
]


@pytest.mark.parametrize("text,why,line,col", BAD, ids=[repr(b[0][:20]) for b in BAD])
@pytest.mark.parametrize("as_bytes", [False, True], ids=["str", "bytes"])
def test_bad_documents_are_one_clean_error(text, why, line, col, as_bytes):
    with pytest.raises(JSONError) as info:
        loads(text.encode() if as_bytes else text, source="where.json")
    e = info.value
    assert isinstance(e, ValueError)
    assert str(e).startswith("where.json: invalid JSON: ")
    assert why in str(e)
    assert (e.lineno, e.colno) == (line, col)
    assert "\n" not in str(e)


def test_without_json_decoder_loaded():
    """The SystemError came from _json's error path needing json.decoder in sys.modules:
    a fresh interpreter that never imported json must still say what is wrong."""
    code = ("import sys; sys.path.insert(0, sys.argv[1])\n"
            "from sangja.jsonio import loads\n"
            "assert 'json.decoder' not in sys.modules\n"
            "for t in ['{', '{\"a\" 1}', '[1 2]', '\"abc']:\n"
            "    try:\n"
            "        loads(t)\n"
            "    except ValueError as e:\n"
            "        print(type(e).__name__, e)\n")
    src = str(__import__("pathlib").Path(jsonio.__file__).parents[1])
    r = subprocess.run([sys.executable, "-S", "-c", code, src], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 4 and all(ln.startswith("JSONError invalid JSON: ") for ln in lines)


def test_not_utf8():
    with pytest.raises(JSONError, match=r"^f: invalid JSON: not UTF-8 \(byte 2\)"):
        loads(b'"a\xff"', source="f")


@pytest.mark.parametrize("text", [
    '{"a": [1, 2.5, "x", true, false, null, {"b": {}}]}', "  [] ", '"\\ud800"', "1e5",
    '[' * MAX_DEPTH + ']' * MAX_DEPTH, '{"k": "' + "x" * 100_000 + '"}',
])
def test_good_documents_read_as_json_reads_them(text):
    assert loads(text) == json.loads(text)
    assert loads(text.encode()) == json.loads(text)


def test_bytes_may_start_with_a_byte_order_mark():
    assert loads(b"\xef\xbb\xbf{}") == {}


def test_load_file_names_the_file_and_bounds_its_size(tmp_path):
    p = tmp_path / "config.json"
    p.write_text('{"a": [1,\n 2')
    with pytest.raises(JSONError, match=rf"^{p}: invalid JSON: .* at line 2 column 3$"):
        load_file(str(p))
    with pytest.raises(JSONError, match=r"^config\.json: invalid JSON"):
        load_file(str(p), source="config.json")
    p.write_text("[" + "1," * 100 + "1]")
    with pytest.raises(JSONError, match="larger than 64 bytes"):
        load_file(str(p), max_bytes=64)
    assert load_file(str(p)) == [1] * 101
