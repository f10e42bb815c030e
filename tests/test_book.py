"""Books: reproducible synthetic draws, cells, and loan tapes with row/column errors."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from simkit import ScenarioError, from_dict, load
from simkit.book import build_book, read_tape
from tests.conftest import ROOT


def test_synthetic_book_is_reproducible_and_keyed_by_segment(minimal) -> None:
    minimal["segments"][0]["exposure"] = {"dist": "lognormal", "median": 1e6, "sigma": 0.5}
    a = build_book(from_dict(minimal))
    b = build_book(from_dict(minimal))
    np.testing.assert_array_equal(a.exposure, b.exposure)
    # adding a segment does not change the loans of the first one
    minimal["segments"].append(dict(minimal["segments"][0], name="other", count=10))
    c = build_book(from_dict(minimal))
    np.testing.assert_array_equal(c.exposure[:1000], a.exposure)
    assert len(c) == 1010
    assert c.segment_names == ("smes", "other")
    assert len(c.cells) == 2
    # another seed, another book
    d = build_book(from_dict(minimal), seed=99)
    assert not np.array_equal(d.exposure[:1000], a.exposure)


def test_cells_sum_guaranteed_with_single_limit() -> None:
    s = load(ROOT / "scenarios" / "anhui_4321.toml")
    book = build_book(s)
    assert len(book) == 126_700
    assert np.all(book.guaranteed <= 20_000_000)
    assert np.all(book.guaranteed <= book.exposure)
    np.testing.assert_allclose(book.cells.guaranteed.sum(), book.guaranteed.sum(), rtol=1e-12)
    assert set(book.cells.guarantor) == {"hefei_guarantor", "north_guarantor",
                                         "south_guarantor"}
    # the ticket size is near Anhui's 1.04 million yuan per entity (DOMAIN.md V12)
    assert 0.8e6 < book.exposure.mean() < 1.4e6


def _tape(tmp_path: Path, text: str) -> Path:
    f = tmp_path / "loans.csv"
    f.write_text(text)
    return f


GOOD = ("loan_id,exposure,default_prob,lgd,region,guarantor\n"
        "a,1000000,0.02,0.45,east,guarantor\n"
        "b,2000000,0.03,0.5,west,\n")


def test_tape_round_trip(tmp_path: Path, minimal) -> None:
    s = from_dict(minimal)
    book = read_tape(_tape(tmp_path, GOOD), s)
    assert book.exposure.tolist() == [1e6, 2e6]
    assert book.region_names == ("east", "west")
    assert book.cells.guarantor == ("guarantor", None) or len(book.cells) == 2
    assert book.tenor_years.tolist() == [1.0, 1.0]


def test_tape_through_scenario(tmp_path: Path, minimal) -> None:
    _tape(tmp_path, GOOD)
    import tomllib  # noqa: F401 - the scenario below is written as TOML by hand

    (tmp_path / "s.toml").write_text(
        '[parties.bank]\n[parties.guarantor]\n[book]\ntape = "loans.csv"\n'
        '[[agreements]]\nname = "a"\nlayers = [{party = "bank", share = 0.2}, '
        '{party = "guarantor", share = 0.8}]\n')
    s = load(tmp_path / "s.toml")
    from simkit.book import book_for

    assert len(book_for(s)) == 2


@pytest.mark.parametrize(("text", "message"), [
    ("exposure,default_prob,lgd\n1e6,1.5,0.4\n",
     "row 1, column default_prob must be a number in (0, 1), got '1.5'"),
    ("exposure,default_prob,lgd\n1e6,0.02,0.4\n-5,0.02,0.4\n",
     "row 2, column exposure must be a number in (0, 1e+12], got '-5'"),
    ("exposure,default_prob,lgd\n1e6,abc,0.4\n",
     "row 1, column default_prob must be a number in (0, 1), got 'abc'"),
    ("exposure,default_prob,lgd,regoin\n1e6,0.02,0.4,x\n",
     "has unknown column 'regoin'; did you mean 'region'?"),
    ("exposure,lgd\n1e6,0.4\n", "lacks the required column 'default_prob'"),
    ("exposure,default_prob,lgd\n1e6,0.02\n", "row 1 has 2 fields, the header 3"),
    ("exposure,default_prob,lgd,guarantor\n1e6,0.02,0.4,guarantr\n",
     "row 1, column guarantor names unknown value 'guarantr'; did you mean 'guarantor'?"),
    ("exposure,default_prob,lgd\n", "has no loans"),
])
def test_bad_tapes_name_row_and_column(tmp_path: Path, minimal, text: str,
                                       message: str) -> None:
    s = from_dict(minimal)
    path = _tape(tmp_path, text)
    with pytest.raises(ScenarioError, match=re.escape(message)) as info:
        read_tape(path, s)
    assert str(info.value).startswith(str(path))


def test_parquet_tape(tmp_path: Path, minimal) -> None:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    table = pa.table({"exposure": [1e6, 3e6], "default_prob": [0.01, 0.02], "lgd": [0.4, 0.6]})
    pq.write_table(table, tmp_path / "loans.parquet")
    book = read_tape(tmp_path / "loans.parquet", from_dict(minimal))
    assert book.default_prob.tolist() == [0.01, 0.02]


def test_tape_tolerates_bom_and_trailing_blank_lines(tmp_path: Path, minimal) -> None:
    f = tmp_path / "loans.csv"
    f.write_bytes(b"\xef\xbb\xbfexposure,default_prob,lgd\r\n1e6,0.02,0.4\r\n\r\n")
    assert len(read_tape(f, from_dict(minimal))) == 1


def test_tape_duplicate_column(tmp_path: Path, minimal) -> None:
    path = _tape(tmp_path, "exposure,default_prob,lgd,lgd\n1e6,0.02,0.4,0.5\n")
    with pytest.raises(ScenarioError, match="has the column 'lgd' twice"):
        read_tape(path, from_dict(minimal))


def test_tape_guarantor_needs_a_guarantor_layer(tmp_path: Path, minimal) -> None:
    minimal["agreements"][0]["layers"] = [{"party": "bank", "share": 0.5},
                                          {"party": "provincial", "share": 0.5}]
    path = _tape(tmp_path, "exposure,default_prob,lgd,guarantor\n1e6,0.02,0.4,guarantor\n")
    with pytest.raises(ScenarioError, match=re.escape(
            "row 1, column guarantor is 'guarantor', but agreement 'std' has no "
            "guarantor-kind layer")):
        read_tape(path, from_dict(minimal))


def test_corrupt_parquet_is_a_clear_error(tmp_path: Path, minimal) -> None:
    pytest.importorskip("pyarrow")
    f = tmp_path / "loans.parquet"
    f.write_text("garbage")
    with pytest.raises(ScenarioError, match="cannot be read as Parquet"):
        read_tape(f, from_dict(minimal))
    with pytest.raises(ScenarioError, match=r"missing\.parquet: cannot be read: No such file"):
        read_tape(tmp_path / "missing.parquet", from_dict(minimal))


# --------------------------------------------------------------------------------------
# issue 7: tapes that crashed, were coerced or leaked content
# --------------------------------------------------------------------------------------
def _tape_error(tmp_path: Path, minimal, content: str | bytes, match: str) -> str:
    f = tmp_path / "loans.csv"
    if isinstance(content, bytes):
        f.write_bytes(content)
    else:
        f.write_text(content, encoding="utf-8")
    with pytest.raises(ScenarioError, match=match) as info:
        read_tape(f, from_dict(minimal))
    msg = str(info.value)
    assert msg.startswith(f"{f}: ") and "\n" not in msg
    return msg


def test_tape_cell_over_the_csv_field_limit(tmp_path: Path, minimal) -> None:
    # issue 7 item 8: _csv.Error for a cell longer than 131,072 characters
    msg = _tape_error(tmp_path, minimal, "exposure,default_prob,lgd\n" + "1" * 200_000
                      + ",0.02,0.4\n", r"line 2 is not valid CSV \(field larger than field limit")
    assert len(msg) < 300


def test_tape_long_cell_is_reported_without_echo(tmp_path: Path, minimal) -> None:
    msg = _tape_error(tmp_path, minimal, "exposure,default_prob,lgd\n1e6,0.02,0.4\n1e6,0.02,"
                      + "7" * 10_000 + "\n", r"row 2, column lgd has 10,000 characters, more "
                      "than the 4,096 accepted")
    assert "7777" not in msg


def test_tape_nul_byte_is_a_clear_error(tmp_path: Path, minimal) -> None:
    _tape_error(tmp_path, minimal, b"exposure,default_prob,lgd\n1e6,0.0\x002,0.4\n",
                r"line 2 is not valid CSV|row 1, column default_prob must be a number")


@pytest.mark.parametrize("cell", ["1_0", "١٠", "１０", "10\u200b", "inf", "nan", "0x1A",
                                  "1e", "--1", "1,5"])
def test_tape_numbers_are_plain_decimal_only(tmp_path: Path, minimal, cell: str) -> None:
    # issue 7 item 16: float() read `1_0` as 10 and non-ASCII digits as numbers
    _tape_error(tmp_path, minimal,
                f'exposure,default_prob,lgd,tenor_years\n1e6,0.02,0.4,"{cell}"\n',
                r"row 1, column tenor_years must be a number in \(0, 30\], got ")


@pytest.mark.parametrize("cell,value", [("10", 10.0), ("+2.5", 2.5), (".5", 0.5), ("5.", 5.0),
                                        ("1e1", 10.0), ("2.5E+0", 2.5), (" 3 ", 3.0)])
def test_tape_plain_decimal_forms_are_read(tmp_path: Path, minimal, cell: str,
                                           value: float) -> None:
    f = tmp_path / "loans.csv"
    f.write_text(f"exposure,default_prob,lgd,tenor_years\n1e6,0.02,0.4,{cell}\n")
    assert read_tape(f, from_dict(minimal)).tenor_years[0] == value


def test_tape_duplicate_loan_ids(tmp_path: Path, minimal) -> None:
    # issue 7 item 16: duplicate loan_ids were accepted silently
    _tape_error(tmp_path, minimal, "loan_id,exposure,default_prob,lgd\nA,1e6,0.02,0.4\n"
                "B,1e6,0.02,0.4\nA,2e6,0.02,0.4\n",
                r"row 3, column loan_id repeats 'A' of row 1 \(loan ids must be unique\)")
    f = tmp_path / "ok.csv"
    f.write_text("loan_id,exposure,default_prob,lgd\nA,1e6,0.02,0.4\n,1e6,0.02,0.4\n"
                 ",1e6,0.02,0.4\n")
    assert len(read_tape(f, from_dict(minimal))) == 3  # empty ids are not compared


def test_tape_that_is_not_a_tape_is_not_echoed(tmp_path: Path, minimal) -> None:
    # issue 7 item 19: the message quoted the first line of any file
    msg = _tape_error(tmp_path, minimal, "API_TOKEN=s3cr3t,other\nmore\n",
                      "is not a CSV with the tape columns")
    assert "s3cr3t" not in msg and "API_TOKEN" not in msg
    msg = _tape_error(tmp_path, minimal, "exposure,default_prob,lgd,API_TOKEN=s3cr3t\n",
                      r"has an unknown column \(column 4, not shown\)")
    assert "s3cr3t" not in msg


def test_tape_without_a_header_line_is_refused_early(tmp_path: Path, minimal) -> None:
    _tape_error(tmp_path, minimal, "x" * 200_000, "is not a CSV with the tape columns .*; no "
                "header line in the first 65,536 bytes")


@pytest.mark.parametrize("kind", ["fifo", "dir", "dev"])
def test_tape_must_be_a_regular_file(tmp_path: Path, minimal, kind: str) -> None:
    # issue 7 item 19: /dev/zero read until memory ran out, a FIFO blocked forever
    import os

    if kind == "fifo":
        f = tmp_path / "loans.csv"
        os.mkfifo(f)
    elif kind == "dir":
        f = tmp_path / "loans.csv"
        f.mkdir()
    else:
        f = Path("/dev/zero")
    what = {"fifo": "a FIFO", "dir": "a directory", "dev": "a device or other special file"}
    with pytest.raises(ScenarioError, match=f"^{re.escape(str(f))}: is {what[kind]}, not a "
                       "regular file"):
        read_tape(f, from_dict(minimal))
    if kind == "fifo":
        minimal.pop("segments")
        minimal["book"] = {"tape": str(f)}
        with pytest.raises(ScenarioError, match="is a FIFO, not a regular file"):
            read_tape(from_dict(minimal).tape, from_dict(minimal))


def test_tape_tiny_lgd_sd(tmp_path: Path, minimal) -> None:
    _tape_error(tmp_path, minimal, "exposure,default_prob,lgd,lgd_sd\n1e6,0.02,0.5,1e-300\n",
                r"row 1, column lgd_sd must be 0 \(a fixed LGD\) or >= 1e-06")


@pytest.mark.parametrize("pd", ["1e-320", "1e-13", "0.9999999999999"])
def test_tape_default_prob_within_the_engine_floor(tmp_path: Path, minimal, pd: str) -> None:
    # found by the fuzz battery: a subnormal default_prob overflowed in the Monte Carlo
    _tape_error(tmp_path, minimal, f"exposure,default_prob,lgd\n1e6,{pd},0.5\n",
                r"row 1, column default_prob must be in \[1e-12, 1 - 1e-12\] \(the engines' "
                "probability floor\\)")


# --------------------------------------------------------------------------------------
# issue 10 item 7: vectorised checks; pyarrow and the pure-Python path agree
# --------------------------------------------------------------------------------------
def _outcome(path: Path, scenario) -> tuple[str, object]:
    """``("error", message)`` or ``("book", arrays)`` of reading ``path``."""
    try:
        book = read_tape(path, scenario)
    except ScenarioError as exc:
        return "error", str(exc)
    return "book", (book.exposure.tolist(), book.default_prob.tolist(), book.lgd_mean.tolist(),
                    book.lgd_sd.tolist(), book.tenor_years.tolist(), book.tech_tier.tolist(),
                    book.agreement.tolist(), book.guarantor.tolist(), book.guarantor_names,
                    book.region.tolist(), book.region_names, book.segment_names,
                    book.segment.tolist(), book.sector_names, book.cell.tolist())


def _both(path: Path, scenario, monkeypatch) -> tuple[tuple[str, object], tuple[str, object]]:
    import simkit.book as book_module

    fast = _outcome(path, scenario)
    with monkeypatch.context() as m:
        m.setattr(book_module, "USE_ARROW", False)
        slow = _outcome(path, scenario)
    return fast, slow


TRICKY = [
    GOOD,
    GOOD.replace("\n", "\r\n"),
    GOOD.replace("\n", "\r"),
    GOOD + "\n\n , ,,, ,\n",                       # trailing blank rows, some with commas
    GOOD.replace("a,1000000", "a,\u3000 1000000\x1c"),  # Unicode spaces around a number
    GOOD.replace("east", " east ").replace("west", "east\t"),
    "loan_id,exposure,default_prob,lgd\nA,1e6,0.02,0.4\n A ,1e6,0.02,0.4\n",
    "loan_id,exposure,default_prob,lgd\n1,1e6,0.02,0.4\n,1e6,0.02,0.4\n01,1e6,0.02,0.4\n",
    'exposure,default_prob,lgd,region\n1e6,0.02,0.4,"a, b"\n1e6,0.02,0.4,"a, b"\n',
    '"exposure","default_prob","lgd"\n1e6,0.02,0.4\n',
    "exposure,default_prob,lgd\n1e6,0.02,0.4\n\n1e6,0.02,0.4\n",  # blank line inside
    "exposure,default_prob,lgd\n1e6,0.02,0.4,9\n",
    "exposure,default_prob,lgd,lgd_sd\n1e6,0.02,0.4,\n2e6,0.03,0.5,0.1\n",
    "exposure,default_prob,lgd,tech_tier\n1e6,0.02,0.4,1.5\n",
    "exposure,default_prob,lgd,tenor_years\n1e6,0.02,0.4,\u0661\n",
    "exposure,default_prob,lgd\n1e6,0.02,\n",
    "exposure,default_prob,lgd\n1e6,0.02,0.4\n1e400,0.02,0.4\n",
    "exposure,default_prob,lgd,segment,sector\n1e6,0.02,0.4,,x\n1e6,0.02,0.4,tape,\n",
    "exposure,default_prob,lgd,guarantor\n1e6,0.02,0.4,\n1e6,0.02,0.4, guarantor\n",
]


@pytest.mark.parametrize("text", TRICKY)
def test_arrow_and_python_paths_agree(tmp_path: Path, minimal, text: str,
                                      monkeypatch) -> None:
    pytest.importorskip("pyarrow")
    f = tmp_path / "loans.csv"
    f.write_text(text, encoding="utf-8", newline="")
    fast, slow = _both(f, from_dict(minimal), monkeypatch)
    assert fast == slow


def test_arrow_and_python_paths_agree_on_random_tapes(tmp_path: Path, minimal,
                                                      monkeypatch) -> None:
    """A differential check on generated tapes: same book or same message."""
    pytest.importorskip("pyarrow")
    from hypothesis import given, settings
    from hypothesis import strategies as st

    cells = st.sampled_from(["", " ", "1e6", "2.5e6", "0.02", "0.4", "1", "3", "-1", "abc",
                             "1_0", "nan", " 0.1 ", "\u30000.3", "x", "east", "guarantor",
                             "std", "0", ".5", "5.", "A", "B", "1,5", '"q"'])
    columns = st.lists(st.sampled_from(["exposure", "default_prob", "lgd", "lgd_sd",
                                        "region", "tenor_years", "tech_tier", "loan_id",
                                        "guarantor", "segment", "agreement"]),
                       min_size=3, max_size=6)
    s = from_dict(minimal)

    @settings(max_examples=120, deadline=None, derandomize=True, database=None)
    @given(columns, st.data())
    def check(header: list[str], data) -> None:
        n = data.draw(st.integers(1, 4))
        rows = [[data.draw(cells) for _ in header] for _ in range(n)]
        text = ",".join(header) + "\n" + "".join(",".join(r) + "\n" for r in rows)
        f = tmp_path / "loans.csv"
        f.write_text(text, encoding="utf-8", newline="")
        fast, slow = _both(f, s, monkeypatch)
        assert fast == slow, text

    check()


def test_python_strip_set_is_complete() -> None:
    from simkit.book import _SPACES

    assert "".join(c for c in map(chr, range(0x110000)) if c.isspace()) == _SPACES


def test_cell_keys_match_numpy_unique() -> None:
    from simkit.book import _cell_keys

    rng = np.random.default_rng(3)
    for highs in [(2, 3, 5, 7), (1, 1, 1, 1), (3, 4, 1000, 1000)]:
        cols = [rng.integers(-1 if i == 1 else 0, k, 3000) for i, k in enumerate(highs)]
        uniq, cell = _cell_keys(*cols)
        ref, inv = np.unique(np.stack(cols, axis=1), axis=0, return_inverse=True)
        np.testing.assert_array_equal(uniq, ref)
        np.testing.assert_array_equal(cell, inv.reshape(-1))


def _parquet(tmp_path: Path, columns: dict) -> Path:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    f = tmp_path / "loans.parquet"
    pq.write_table(pa.table(columns), f)
    return f


def test_parquet_typed_columns(tmp_path: Path, minimal) -> None:
    pa = pytest.importorskip("pyarrow")
    f = _parquet(tmp_path, {
        "loan_id": pa.array([5, 6, 7], pa.int64()),
        "exposure": pa.array([1_000_000, 2_000_000, 3_000_000], pa.int32()),
        "default_prob": pa.array([0.01, 0.02, 0.03], pa.float32()),
        "lgd": pa.array(["0.4", " 0.5", "0.6"], pa.large_string()),
        "lgd_sd": pa.array([None, 0.1, None]),
        "region": pa.array(["east", None, " east"]).dictionary_encode(),
        "guarantor": pa.array(["guarantor", "", None]),
    })
    book = read_tape(f, from_dict(minimal))
    assert book.exposure.tolist() == [1e6, 2e6, 3e6]
    assert book.default_prob.tolist() == np.array([0.01, 0.02, 0.03], np.float32
                                                  ).astype(float).tolist()
    assert book.lgd_mean.tolist() == [0.4, 0.5, 0.6]
    assert book.lgd_sd.tolist() == [0.0, 0.1, 0.0]
    assert book.region_names == ("east", "default")
    assert book.region.tolist() == [0, 1, 0]
    assert book.guarantor.tolist() == [0, -1, -1]


@pytest.mark.parametrize(("column", "values", "message"), [
    ("exposure", [1e6, float("nan")], "row 2, column exposure must be a number in (0, 1e+12], "
                                      "got 'nan' (plain decimal notation only"),
    ("exposure", [1e6, None], "row 2, column exposure must be a number in (0, 1e+12], "
                              "got '' (plain decimal notation only"),
    ("exposure", [True, False], "row 1, column exposure must be a number in (0, 1e+12], got "
                                "'True' (plain decimal notation only"),
    ("default_prob", [0.02, 1.5], "row 2, column default_prob must be a number in (0, 1), "
                                  "got '1.5'"),
    ("exposure", [1_000_000, 2**60], "row 2, column exposure must be a number in "
                                     "(0, 1e+12], got '1152921504606846976'"),
    ("loan_id", [7, 7], "row 2, column loan_id repeats '7' of row 1"),
    ("loan_id", ["A", " A"], "row 2, column loan_id repeats 'A' of row 1"),
    ("region", ["east", None], None),
    ("guarantor", ["guarantor", "nobody"], "row 2, column guarantor names unknown value "
                                           "'nobody'"),
])
def test_parquet_cells_name_row_and_column(tmp_path: Path, minimal, column: str,
                                           values: list, message: str | None) -> None:
    base = {"exposure": [1e6, 2e6], "default_prob": [0.02, 0.03], "lgd": [0.4, 0.5]}
    base[column] = values
    f = _parquet(tmp_path, base)
    if message is None:
        assert read_tape(f, from_dict(minimal)).region_names == ("east", "default")
        return
    with pytest.raises(ScenarioError, match=re.escape(message)):
        read_tape(f, from_dict(minimal))


def test_plain_csv_goes_through_pyarrow_quoted_through_csv() -> None:
    pytest.importorskip("pyarrow")
    from simkit.book import _read_csv_arrow

    header = ["loan_id", "exposure", "default_prob", "lgd", "region", "guarantor"]
    columns = _read_csv_arrow(GOOD.encode(), header)
    assert columns is not None and [c.n for c in columns] == [2] * 6
    assert _read_csv_arrow(GOOD.replace("east", '"east"').encode(), header) is None
    assert _read_csv_arrow((GOOD + "c,1,0.1,0.2\n").replace("c,1", "c,1,9").encode(),
                           header) is None
