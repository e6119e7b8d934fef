import pytest

from b2cal_assets.domain.iov import IoV
from b2cal_assets.domain.outputdb import (
    DatabaseTxtError,
    PayloadEntry,
    format_database_txt,
    parse_database_txt,
    payload_filename,
)

TEXT = """\
dbstore/CDCTimeZeros 1 26,0,-1,-1
dbstore/CDCTimeZeros 2 26,100,26,200
dbstore/ECLCrystalEnergy 3 26,0,-1,-1
"""


def test_parse_and_format_round_trip():
    entries = parse_database_txt(TEXT)
    assert entries == [
        PayloadEntry("CDCTimeZeros", 1, IoV(26, 0, -1, -1)),
        PayloadEntry("CDCTimeZeros", 2, IoV(26, 100, 26, 200)),
        PayloadEntry("ECLCrystalEnergy", 3, IoV(26, 0, -1, -1)),
    ]
    assert format_database_txt(entries) == TEXT
    assert parse_database_txt(format_database_txt(entries)) == entries


def test_blank_lines_and_comments_are_skipped():
    assert len(parse_database_txt("\n# made by hand\n" + TEXT + "\n")) == 3


def test_payload_filename():
    assert payload_filename("CDCTimeZeros", 2) == "dbstore_CDCTimeZeros_rev_2.root"
    assert PayloadEntry("A", 1, IoV(0, 0)).filename == "dbstore_A_rev_1.root"
    with pytest.raises(ValueError, match="revision 0 must be a positive integer"):
        payload_filename("A", 0)
    with pytest.raises(ValueError, match="payload name 'a/b'"):
        payload_filename("a/b", 1)


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("dbstore/A 1", "expected 3 fields"),
        ("A 1 0,0,-1,-1", "must start with 'dbstore/'"),
        ("dbstore/A one 0,0,-1,-1", "revision 'one' is not an integer"),
        ("dbstore/A 0 0,0,-1,-1", "revision 0 must be at least 1"),
        ("dbstore/A 1 0,0,-1", "four comma-separated integers"),
        ("dbstore/A 1 0,5,0,1", "high end is before the low end"),
        ("dbstore/ 1 0,0,-1,-1", "payload name ''"),
    ],
)
def test_errors_name_line_number_and_problem(line, problem):
    text = "dbstore/Good 1 0,0,-1,-1\n\n" + line + "\n"
    with pytest.raises(DatabaseTxtError) as info:
        parse_database_txt(text)
    assert info.value.line_number == 3
    assert str(info.value).startswith("database.txt line 3: ")
    assert problem in str(info.value)
