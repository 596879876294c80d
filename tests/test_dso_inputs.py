"""Bad input to the DSO raises DSOError naming what is wrong."""

from __future__ import annotations

import numpy as np
import pytest

from grid_models import build_feeder
from sim.dso import DSO, DSOError, DSOLimits


@pytest.fixture(scope="module")
def setup():
    f = build_feeder("small", min_group_size=3)
    dso = DSO(f)
    p = f.site_totals(f.homes.p_kw.to_numpy())
    s1 = dso.stage1(p, 0.1)
    return f, dso, p, s1


def test_group_without_homes(setup):
    f = setup[0]
    with pytest.raises(DSOError, match="group 7 has no homes"):
        DSO(f, groups={0: [0, 1, 2], 7: []})
    with pytest.raises(DSOError, match="unknown home id 999"):
        DSO(f, groups={0: [0, 999]})
    with pytest.raises(DSOError, match="home 1 is in groups 0 and 1"):
        DSO(f, groups={0: [0, 1], 1: [1, 2]})


def test_range_and_band_errors(setup):
    f, dso, p, s1 = setup
    g = dso.n_groups
    lmin, lmax = np.full(g, 5.0), np.full(g, 8.0)
    lmin[1] = 9.0
    with pytest.raises(DSOError, match=rf"Lmin > Lmax for groups \[{dso.group_ids[1]}\]"):
        dso.stage2(lmin, lmax, s1.p_low, s1.p_high, p)
    with pytest.raises(DSOError, match="p_low > p_high"):
        dso.stage2(np.full(g, 5.0), lmax, s1.p_high + 1, s1.p_high, p)
    with pytest.raises(DSOError, match="lmin_kw has shape"):
        dso.stage2(np.full(g + 1, 5.0), lmax, s1.p_low, s1.p_high, p)
    with pytest.raises(DSOError, match="unknown mode 'zone'"):
        dso.stage2(np.full(g, 5.0), lmax, s1.p_low, s1.p_high, p, mode="zone")


def test_nan_and_inf(setup):
    f, dso, p, s1 = setup
    bad = p.copy()
    bad[3] = np.nan
    with pytest.raises(DSOError, match=r"forecast_p_kw contains NaN or inf at positions \[3\]"):
        dso.stage1(bad, 0.1)
    with pytest.raises(DSOError, match="price contains NaN"):
        dso.stage1(p, float("inf"))
    g = dso.n_groups
    lmax = np.full(g, 8.0)
    lmax[0] = np.inf
    with pytest.raises(DSOError, match="lmax_kw contains NaN or inf"):
        dso.stage2(np.full(g, 5.0), lmax, s1.p_low, s1.p_high, p)
    with pytest.raises(DSOError, match="price must be >= 0"):
        dso.stage1(p, -0.1)


def test_bad_limits(setup):
    f, dso, p, _ = setup
    with pytest.raises(DSOError, match="ampacity of line 0 must be > 0 A, got -5"):
        dso.stage1(p, 0.1, limits=dso.with_limits(line_ampacity_a={0: -5.0}))
    with pytest.raises(DSOError, match="unknown line index 99"):
        dso.stage1(p, 0.1, limits=dso.with_limits(line_ampacity_a={99: 100.0}))
    with pytest.raises(DSOError, match="voltage band"):
        DSO(f, limits=DSOLimits(v_min_pu=1.05, v_max_pu=0.95))
    with pytest.raises(DSOError, match="v_min_pu is not finite"):
        DSO(f, limits=DSOLimits(v_min_pu=np.nan, v_max_pu=1.05))
