import pytest
from hypothesis import given, strategies as st

from server.core import geo


def test_gcj02_shift_in_shangluo_is_hundreds_of_metres():
    lat, lon = 33.869, 109.940  # 商州区
    glat, glon = geo.wgs84_to_gcj02(lat, lon)
    shift = geo.distance_m(lat, lon, glat, glon)
    assert 100 < shift < 1000


def test_known_point_beijing():
    # Tiananmen: a widely published WGS-84 / GCJ-02 pair, agreeing to a few decimetres.
    glat, glon = geo.wgs84_to_gcj02(39.90734, 116.39089)
    assert geo.distance_m(glat, glon, 39.908745, 116.397128) < 5


def test_outside_china_is_unchanged():
    assert geo.wgs84_to_gcj02(48.8566, 2.3522) == (48.8566, 2.3522)


@given(st.floats(min_value=21.0, max_value=50.0), st.floats(min_value=80.0, max_value=130.0))
def test_round_trip_is_below_a_metre(lat, lon):
    back = geo.gcj02_to_wgs84(*geo.wgs84_to_gcj02(lat, lon))
    assert geo.distance_m(lat, lon, *back) < 1.0


@pytest.mark.parametrize(("a", "b", "metres"), [((0, 0), (0, 1), 111195), ((33.87, 109.94), (33.87, 109.94), 0)])
def test_distance(a, b, metres):
    assert geo.distance_m(*a, *b) == pytest.approx(metres, abs=50)
