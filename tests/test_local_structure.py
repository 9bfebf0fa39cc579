"""The one RDF / coordination implementation (viglas.local_structure) and its two
callers: analysis.structure (re-export) and potentials.validate (own bins, own cutoffs)."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk

from viglas.errors import AnalysisError
from viglas.local_structure import coordination_numbers, rdf


@pytest.fixture
def nacl():
    return bulk("NaCl", "rocksalt", a=5.64).repeat(3)


def test_one_implementation_behind_both_callers():
    import viglas.analysis.structure as s
    import viglas.local_structure as ls

    assert s.rdf is ls.rdf and s.coordination_numbers is ls.coordination_numbers


def test_several_neighbour_species_with_one_cutoff_each(nacl):
    # rocksalt: 6 Cl at a/2 = 2.82 A, 12 Na at a/sqrt(2) = 3.99 A around each Na
    c = coordination_numbers(nacl, "Na", ["Cl", "Na"], {"Cl": 3.0, "Na": 4.1})
    assert c["mean"] == 18.0 and c["histogram"] == {18: 27}
    c = coordination_numbers(nacl, "Na", ["Cl", "Na"], {"Cl": 3.0, "Na": 3.0})
    assert c["mean"] == 6.0
    assert coordination_numbers([nacl, nacl], "Na", "Na", 4.1)["histogram"] == {12: 54}


def test_validate_keeps_its_bins_and_contact_rule(nacl):
    from viglas.potentials.fit import CONTACT_A
    from viglas.potentials.validate import mean_coordination, partial_rdf

    r, g = partial_rdf([nacl], "Na", "Cl", r_max=6.0, dr=0.04)
    r2, g2 = rdf(nacl, "Na", "Cl", r_max=6.0, edges=np.arange(0.0, 6.04, 0.04))
    assert np.array_equal(r, r2) and np.array_equal(g, g2)
    assert abs(r[np.argmax(g)] - 2.82) < 0.04
    # ideal-gas normalisation: sum of rho_Cl g(r) x shell volume up to 3.4 A = 6 Cl per Na
    rho = 0.5 * len(nacl) / nacl.get_volume()
    e = np.arange(0.0, 6.04, 0.04)
    shell = 4.0 / 3.0 * np.pi * (e[1:] ** 3 - e[:-1] ** 3)
    assert np.sum((rho * g * shell)[r < 3.4]) == pytest.approx(6.0, rel=1e-12)
    m = mean_coordination([nacl], "Na", ["Cl"])
    assert m["mean"] == 6.0 and m["fraction"] == {6: 1.0}
    assert m["cutoffs_A"] == {"Cl": round(1.3 * CONTACT_A["Cl-Na"], 3)}


def test_absent_species_is_an_analysis_error(nacl):
    with pytest.raises(AnalysisError):
        rdf(nacl, "Li", "Cl")
    with pytest.raises(AnalysisError):
        coordination_numbers(nacl, "Al", "Cl", 3.0)


def test_report_cleaning_rounds_to_six_decimals():
    from viglas.serialize import clean

    assert clean({"a": np.float64(1.23456789), "b": [np.nan, 2]}, digits=6) == {
        "a": 1.234568, "b": [None, 2]}
    assert clean(1.23456789) == 1.23456789
