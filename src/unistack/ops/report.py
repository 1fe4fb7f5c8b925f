"""``validate``'s three outputs of the same results: a table for people grouped by component (the printer's
column formatter), JSON (the ``CheckResult`` records as a list) and JUnit XML for CI (one testsuite per
component, one testcase per check, ``failure`` and ``skipped`` elements). Pure: results in, text out.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence

import msgspec

from unistack.ops.validate import CheckResult
from unistack.printer import columns

MARKS = {"pass": "ok", "fail": "FAIL", "skip": "skip"}


def grouped(results: Sequence[CheckResult]) -> dict[str, list[CheckResult]]:
    """By component, in the order each component first appears."""
    groups: dict[str, list[CheckResult]] = {}
    for result in results:
        groups.setdefault(result.component, []).append(result)
    return groups


def summary(results: Sequence[CheckResult], elapsed: float | None = None) -> str:
    counts = {verdict: sum(r.verdict == verdict for r in results) for verdict in ("pass", "fail", "skip")}
    text = f"{counts['pass']} passed, {counts['fail']} failed, {counts['skip']} skipped"
    return text + (f" in {elapsed:.2f}s" if elapsed is not None else "")


def text(results: Sequence[CheckResult], elapsed: float | None = None) -> str:
    lines: list[tuple[str, ...]] = [("COMPONENT", "CHECK", "RESULT", "TIME", "DETAIL")]
    notes: list[str] = []
    for component, items in grouped(results).items():
        for i, result in enumerate(items):
            detail = result.detail if result.verdict != "pass" else result.detail[:70]
            lines.append(
                (
                    component if i == 0 else "",
                    result.name,
                    MARKS[result.verdict],
                    f"{result.duration * 1000:.0f}ms",
                    detail.splitlines()[0][:100] if detail else "",
                )
            )
            if result.verdict == "fail":
                notes.append(f"{component} / {result.name}: {result.detail}")
                if result.hint:
                    notes.append(f"  next: {result.hint}")
    out = columns(lines)
    if notes:
        out += "\n\nFailed:\n" + "\n".join(f"  {note}" for note in notes)
    return out + "\n\n" + summary(results, elapsed)


def to_json(results: Sequence[CheckResult]) -> str:
    return msgspec.json.format(msgspec.json.encode(list(results)), indent=2).decode()


def from_json(data: str | bytes) -> list[CheckResult]:
    return msgspec.json.decode(data, type=list[CheckResult])


def junit(results: Sequence[CheckResult], project: str) -> str:
    root = ET.Element("testsuites", name=f"unistack validate {project}")
    _counts(root, results)
    for component, items in grouped(results).items():
        suite = ET.SubElement(root, "testsuite", name=component)
        _counts(suite, items)
        for result in items:
            case = ET.SubElement(
                suite, "testcase", name=result.name, classname=f"{project}.{component}", time=f"{result.duration:.4f}"
            )
            if result.verdict == "fail":
                failure = ET.SubElement(case, "failure", message=result.detail, type="validate")
                failure.text = result.detail + (f"\nnext: {result.hint}" if result.hint else "")
            elif result.verdict == "skip":
                ET.SubElement(case, "skipped", message=result.detail)
            elif result.detail:
                ET.SubElement(case, "system-out").text = result.detail
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True)


def _counts(element: ET.Element, results: Sequence[CheckResult]) -> None:
    element.set("tests", str(len(results)))
    element.set("failures", str(sum(r.verdict == "fail" for r in results)))
    element.set("errors", "0")
    element.set("skipped", str(sum(r.verdict == "skip" for r in results)))
    element.set("time", f"{sum(r.duration for r in results):.4f}")
