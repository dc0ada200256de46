"""Shape rules of time_schedule_rule rows (SPEC 6.1), with located errors."""

from __future__ import annotations

from typing import Any

from control.api.errors import field_error


def rule_errors(rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    errors = []
    for index, rule in enumerate(rules):
        at = f"rules.{index}"
        kind = rule["kind"]
        times = (rule.get("start_time"), rule.get("end_time"))
        if (times[0] is None) != (times[1] is None):
            errors.append(field_error(f"{at}.end_time", "start_time and end_time go together"))
        if kind == "weekly":
            if rule.get("dow") is None:
                errors.append(field_error(f"{at}.dow", "weekly rules need dow (0=Sunday..6)"))
            if times[0] is None and not rule.get("is_closed"):
                errors.append(field_error(f"{at}.start_time", "weekly open rules need hours"))
            if rule.get("start_date") or rule.get("end_date"):
                errors.append(field_error(f"{at}.start_date", "weekly rules take no dates"))
        else:
            if rule.get("dow") is not None:
                errors.append(field_error(f"{at}.dow", f"{kind} rules take no dow"))
            if not rule.get("start_date"):
                errors.append(field_error(f"{at}.start_date", f"{kind} rules need start_date"))
            if kind == "date_range":
                end = rule.get("end_date")
                if not end:
                    errors.append(field_error(f"{at}.end_date", "date_range rules need end_date"))
                elif rule.get("start_date") and end < rule["start_date"]:
                    errors.append(field_error(f"{at}.end_date", "end_date is before start_date"))
            elif rule.get("end_date"):
                errors.append(field_error(f"{at}.end_date", "date rules take only start_date"))
            if times[0] is None and not rule.get("is_closed"):
                errors.append(
                    field_error(f"{at}.start_time", "open date rules need hours (or is_closed=1)")
                )
        if times[0] is not None and times[0] == times[1]:
            errors.append(field_error(f"{at}.end_time", "an interval cannot be empty"))
    return errors
