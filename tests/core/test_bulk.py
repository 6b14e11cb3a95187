"""The cyclic collector pause used by bulk requests (draw freeze and run)."""
import gc

from server.core.bulk import collector_paused


def test_the_collector_is_paused_inside_and_resumes_after_even_on_error():
    assert gc.isenabled()
    try:
        with collector_paused():
            assert not gc.isenabled()
            raise ValueError("a failed run")
    except ValueError:
        pass
    assert gc.isenabled()


def test_a_pause_inside_a_pause_leaves_the_outer_one_in_charge():
    with collector_paused():
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the inner block did not turn it back on early
    assert gc.isenabled()


def test_as_a_decorator_it_keeps_the_view_name_and_docstring():
    @collector_paused()
    def post(draw_id):
        """执行抽取 / Run the draw"""
        return gc.isenabled(), draw_id

    assert post("d1") == (False, "d1") and gc.isenabled()
    assert post.__name__ == "post" and post.__doc__ == "执行抽取 / Run the draw"
