import pytest

from b2cal_assets.domain.graph import CalibrationGraph, GraphError, find_cycles

# svd and cdc are independent; alignment needs both; ecl needs cdc; klm needs alignment and ecl.
DEPS = {
    "klm": ["alignment", "ecl"],
    "ecl": ["cdc"],
    "alignment": ["svd", "cdc"],
    "svd": [],
    "cdc": [],
}


def test_order_puts_dependencies_first_and_is_deterministic():
    graph = CalibrationGraph(DEPS)
    order = graph.order()
    assert order == ["cdc", "ecl", "svd", "alignment", "klm"]
    assert CalibrationGraph(dict(reversed(DEPS.items()))).order() == order


def test_order_with_a_key_still_respects_dependencies():
    rank = {"svd": 0, "cdc": 0, "alignment": 1, "ecl": 2, "klm": 3}
    order = CalibrationGraph(DEPS).order(key=lambda n: (rank[n], n))
    assert order == ["cdc", "svd", "alignment", "ecl", "klm"]


def test_direct_and_transitive_neighbours():
    graph = CalibrationGraph(DEPS)
    assert graph.upstream("klm") == ("alignment", "ecl")
    assert graph.downstream("cdc") == ("alignment", "ecl")
    assert graph.ancestors("klm") == ("cdc", "ecl", "svd", "alignment")
    assert graph.descendants("svd") == ("alignment", "klm")
    assert graph.descendants("klm") == ()


def test_cycle_is_named_whole():
    with pytest.raises(GraphError) as info:
        CalibrationGraph({"a": ["b"], "b": ["c"], "c": ["a"], "d": []})
    assert "a -> b -> c -> a" in str(info.value)
    assert info.value.cycle == ("a", "b", "c", "a")


def test_self_cycle():
    with pytest.raises(GraphError, match="a -> a"):
        CalibrationGraph({"a": ["a"]})


def test_unknown_dependency_names_who_asked():
    with pytest.raises(GraphError) as info:
        CalibrationGraph({"ecl": ["cdc"]})
    assert "'ecl' depends on 'cdc'" in str(info.value)
    assert info.value.unknown == ("ecl", "cdc")


def test_unknown_name_in_queries():
    with pytest.raises(GraphError, match="no calibration named 'top'"):
        CalibrationGraph(DEPS).upstream("top")


def test_find_cycles_reports_each_cycle_once():
    cycles = find_cycles({"a": ["b"], "b": ["a"], "c": ["d"], "d": ["c"], "e": ["a"]})
    assert cycles == [("a", "b", "a"), ("c", "d", "c")]
