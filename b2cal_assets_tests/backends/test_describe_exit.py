"""A job's end in words says its exit code once, and its reason only when that says more."""

from b2cal_assets.backends.base import describe_exit


def test_the_exit_code_is_said_once():
    assert describe_exit(1, "exit code 1") == "exit code 1"
    assert describe_exit(1, None) == "exit code 1"


def test_a_reason_that_says_more_is_kept():
    assert describe_exit(137, "killed by SIGKILL") == "exit code 137 (killed by SIGKILL)"
    assert describe_exit(None, "the batch system forgot the job") == "the batch system forgot the job"
    assert describe_exit(None) == "no exit code"
