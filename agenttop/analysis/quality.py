"""Quality signals of a span, beyond success and failure (what the lesson asks to watch).

- prompt: responses cut short (finish reason ``length``) or blocked by a content filter,
  and evaluation scores (``gen_ai.evaluation.score.value`` on the span or on a
  ``gen_ai.evaluation.result`` event);
- memory: retrieval quality, from the number of results (``db.vector.query.result_count``,
  ``gen_ai.memory.record.count``, ``db.response.returned_rows``, OpenInference
  ``retrieval.documents``) and the best result's score.

``signals`` returns only what the span says; the writer sums them per minute.
"""

from __future__ import annotations

import json
import re
from typing import Any

_OUTPUT_REASON = re.compile(r'"finish_reason"\s*:\s*"(length|content_filter)"')
_COUNT_KEYS = ("db.vector.query.result_count", "gen_ai.memory.record.count",
               "db.response.returned_rows")
_TOP_SCORE_KEYS = ("db.vector.query.top_score", "gen_ai.memory.top_score")
_EVAL_KEY = "gen_ai.evaluation.score.value"
_DOC_SCORE = re.compile(r"^retrieval\.documents\.(\d+)\.document\.score$")
_DOC_KEY = re.compile(r"^retrieval\.documents\.(\d+)\.")


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _prompt(attributes: dict[str, Any], genai: dict[str, Any], out: dict[str, Any]) -> None:
    reasons = set(genai.get("finish_reasons") or ())
    output = attributes.get("gen_ai.output.messages")
    if isinstance(output, str) and "finish_reason" in output:
        reasons.update(_OUTPUT_REASON.findall(output))
    if "length" in reasons:
        out["truncated"] = 1
    if "content_filter" in reasons:
        out["content_filtered"] = 1


def _retrieval(attributes: dict[str, Any], out: dict[str, Any]) -> None:
    count = next((n for k in _COUNT_KEYS if (n := _number(attributes.get(k))) is not None), None)
    top = next((n for k in _TOP_SCORE_KEYS if (n := _number(attributes.get(k))) is not None),
               None)
    documents = attributes.get("retrieval.documents")
    if isinstance(documents, list):
        count = len(documents) if count is None else count
        scores = [_number(d.get("document.score", d.get("score")))
                  for d in documents if isinstance(d, dict)]
        scores = [s for s in scores if s is not None]
        if scores and top is None:
            top = max(scores)
    elif count is None and any(k.startswith("retrieval.documents.") for k in attributes):
        # OpenInference flattens the list: retrieval.documents.<i>.document.<field>
        indices, scores = set(), []
        for key, value in attributes.items():
            if (m := _DOC_KEY.match(key)) is not None:
                indices.add(m.group(1))
                if _DOC_SCORE.match(key) and (n := _number(value)) is not None:
                    scores.append(n)
        count = len(indices)
        if scores and top is None:
            top = max(scores)
    if count is None:
        count = _entity_output_count(attributes.get("traceloop.entity.output"))
    if count is not None:
        out["retrieval_count"] = int(count)
    if top is not None:
        out["top_score"] = top


def _entity_output_count(output: Any) -> int | None:
    """OpenLLMetry's retriever output, ``{"documents": [...], "count": 2}`` as JSON text."""
    if not isinstance(output, str) or '"documents"' not in output:
        return None
    try:
        value = json.loads(output)
    except ValueError:
        return None
    if not isinstance(value, dict):
        return None
    count = value.get("count")
    if isinstance(count, int) and not isinstance(count, bool):
        return count
    documents = value.get("documents")
    return len(documents) if isinstance(documents, list) else None


def _evaluation(attributes: dict[str, Any], events: list[dict], out: dict[str, Any]) -> None:
    score = _number(attributes.get(_EVAL_KEY))
    if score is None:
        for event in events:
            if event["name"] == "gen_ai.evaluation.result":
                score = _number(event["attributes"].get(_EVAL_KEY))
                if score is not None:
                    break
    if score is not None:
        out["eval_score"] = score


def signals(layer: str, attributes: dict[str, Any], events: list[dict],
            genai: dict[str, Any]) -> dict[str, Any]:
    """The quality signals of one span (empty for most spans)."""
    out: dict[str, Any] = {}
    if layer == "prompt":
        _prompt(attributes, genai, out)
    elif layer == "memory":
        _retrieval(attributes, out)
    if events or _EVAL_KEY in attributes:
        _evaluation(attributes, events, out)
    return out
