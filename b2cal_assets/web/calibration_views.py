"""What the calibration pages show, read through the loop's views (``loop/page_views.py``,
``loop/work_views.py``): the web layer asks, it never queries the calibration database itself."""

from __future__ import annotations

from b2cal_assets.loop.page_views import (
    AttemptView,
    AuditView,
    CalibrationView,
    assigned_expert,
    calibration_view,
)
from b2cal_assets.loop.service import LoopService, StepRow

__all__ = [
    "AttemptView",
    "AuditView",
    "CalibrationView",
    "assigned_expert",
    "calibration_view",
    "status_by_processing",
]


def status_by_processing(service: LoopService) -> list[tuple[str, list[StepRow]]]:
    return [(name, service.status_rows(name)) for name in service.all_processing_names()]
