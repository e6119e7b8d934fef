"""What tickets and web pages show of the server's paths: a file named by its last part, but the
directory of a failed job's logs in full, where the expert reads them."""

from __future__ import annotations

from b2cal_assets.redaction import without_server_paths

LOGS = "/srv/b2cal/work/p1/toy_a/attempt_1/calibration_results/toy_a/iteration_0/0"


def test_the_log_directory_of_a_failed_subjob_is_shown_in_full():
    message = (
        "calibration toy_a iteration 0: collector subjob toy_a.0 failed with exit code 1 after 2 try(ies); "
        f"1 of 2 subjob(s) failed. Logs in {LOGS}\nOSError: cannot open /srv/b2cal/data/raw/e1_r2.root"
    )
    shown = without_server_paths(message)
    assert f"Logs in {LOGS}\n" in shown
    assert shown.endswith("cannot open …/e1_r2.root")  # any other path still cut to its file


def test_other_paths_are_cut_to_their_last_part_and_pages_and_urls_left_alone():
    text = "copy /srv/b2cal/payloads/p1/dbstore_x_rev_1.root to https://host/a/b, see /b2cal/processing/p1/toy_a"
    assert without_server_paths(text) == (
        "copy …/dbstore_x_rev_1.root to https://host/a/b, see /b2cal/processing/p1/toy_a"
    )
    assert without_server_paths("Logs are in /srv/b2cal/work/x") == "Logs are in …/x"
