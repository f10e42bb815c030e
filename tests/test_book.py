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
    with pytest.raises(ScenarioError, match="missing.parquet: cannot be read: No such file"):
        read_tape(tmp_path / "missing.parquet", from_dict(minimal))
