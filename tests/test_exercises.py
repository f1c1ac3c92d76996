"""Exercise guards skip exactly the unfinished work, and test messages say expected, got and where."""
import time

import numpy as np
import pytest

from helpers import exercises
from helpers.exercises import expect_close, expect_equal, needs, time_limit


@pytest.fixture(autouse=True)
def fresh():
    exercises._UNFINISHED.clear()
    yield
    exercises._UNFINISHED.clear()


def unfinished():
    raise NotImplementedError("2b: Var.__mul__")


def test_needs_skips_an_unfinished_exercise_and_the_cells_that_use_its_results(capsys):
    with needs("2b"):
        result = unfinished()
        ran_on = True  # noqa: F841 (never reached)
    assert "task 2b" in capsys.readouterr().out
    with needs("2b"):
        print(result)  # noqa: F821 - the name the skipped cell would have defined
    assert "skipped above because task 2b" in capsys.readouterr().out


def test_needs_lets_real_errors_through():
    with pytest.raises(ZeroDivisionError):
        with needs("2b"):
            1 / 0
    with pytest.raises(NameError):  # no unfinished task: a missing name is a bug, not a skip
        with needs("2b"):
            undefined_name  # noqa: F821


def test_a_finished_task_no_longer_hides_name_errors():
    with needs("2l"):
        unfinished()
    with needs("2l"):
        pass  # the student wrote it: the cell ran
    with pytest.raises(NameError):
        with needs("2l"):
            another_undefined  # noqa: F821


def test_needs_takes_several_tasks_and_refuses_none(capsys):
    with needs("1c", "1j"):
        unfinished()
    assert "needs tasks 1c and 1j" in capsys.readouterr().out
    with needs("2.1", "2.2", "2.3"):
        unfinished()
    assert "needs tasks 2.1, 2.2 and 2.3" in capsys.readouterr().out
    with pytest.raises(ValueError, match="task numbers"):
        needs()


def test_expect_close_says_what_was_expected_what_came_and_where():
    expect_close([1.0, 2.0], np.array([1.0, 2.0 + 1e-12]), "grads", "Var.__mul__")
    with pytest.raises(AssertionError) as err:
        expect_close([5.0, 4.0], [5.0, 3.0], "(a.grad, b.grad)", "Var.__mul__'s grad_fn")
    assert "expected [5.0, 3.0], got [5.0, 4.0]" in str(err.value)
    assert "Look at Var.__mul__'s grad_fn" in str(err.value)
    with pytest.raises(AssertionError, match="shape"):
        expect_close(np.zeros((2, 3)), np.zeros((3, 2)), "dW", "backprop_np")
    with pytest.raises(AssertionError, match="nothing computed yet"):
        expect_close(..., 0.65, "m_t", "the Adam step")
    with pytest.raises(AssertionError, match="a number or an array"):
        expect_close("abc", 1.0, "loss", "squared_loss")


def test_expect_equal():
    expect_equal(3, 3, "x", "y")
    with pytest.raises(AssertionError, match="expected 'a', got 'b'"):
        expect_equal("b", "a", "name", "here")


def test_time_limit_stops_a_runaway_block_and_leaves_fast_ones_alone():
    with time_limit(1, "fast"):
        pass
    started = time.perf_counter()
    with pytest.raises(TimeoutError, match="2\\^40 paths took longer than 0.2 s"):
        with time_limit(0.2, "2^40 paths"):
            while True:
                pass
    assert time.perf_counter() - started < 2
