"""Compares two recordings of the node-agent scenario (node_agent.py): ours vs the original.

Per role (admin, scheduler-a-1, executor-cron, ...), the sequence of events — RPCs (request,
status, details, answer as the agent decodes it, fields present on the wire), Docker, Azure,
redis and at calls, crontab and at queue contents, how the process ended — is aligned and
every difference listed, each tagged with the issue-14 item it shows when it is one.

Normalised before comparing (and only this): the scenario's directory and port (they differ
between the two runs), `lastActive` (the server's clock; its precision is kept), retries of
calls that did not reach a server (UNAVAILABLE) and repeats of the same poll with the same
answer (how often the executor polls depends on timing).

    python compare.py OURS_DIR ORIGINAL_DIR      # prints the differences; exit 1 if any
"""

from __future__ import annotations

import difflib
import json
import re
import sys
from pathlib import Path

IGNORED_KINDS = {"step", "masked"}
_TIME_FRACTION = re.compile(r"\d{2}:\d{2}:\d{2}(\.\d+)?")


def _clock(value: str) -> str:
    m = _TIME_FRACTION.search(value)
    frac = m.group(1) if m else None
    # MongoDB keeps milliseconds; Python prints none when they are 0: both are "milliseconds".
    if not frac or frac.endswith("000"):
        return "<server-clock, milliseconds>"
    return "<server-clock, microseconds>"


# Tokens handed out in replies (and passed on by the node agent) are random in ours, derived
# from the user's fields in the original (issue 15 item 1): the same place, another value.
_TOKEN = re.compile(r"(access_token=|access-token=)[0-9a-f]{64}")
_TOKEN_BYTES = re.compile(rb"(access_token=|access-token=)[0-9a-f]{64}")


def _scrub_hex(value: str) -> str:
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        return value
    return _TOKEN_BYTES.sub(rb"\1<token>", raw).hex()


def _scrub(value, subs: list[tuple[re.Pattern, str]]):
    if isinstance(value, str):
        for pattern, repl in subs:
            value = pattern.sub(repl, value)
        return value
    if isinstance(value, list):
        return [_scrub(v, subs) for v in value]
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if k == "lastActive" and isinstance(v, str):
                out[k] = _clock(v)
            elif k.endswith("_hex") and isinstance(v, str):
                out[k] = _scrub_hex(v)
            else:
                out[k] = _scrub(v, subs)
        return out
    return value


def load(run_dir: Path) -> dict[str, list[dict]]:
    """Events of one run, per role, in order, normalised."""
    run_dir = Path(run_dir).resolve()
    meta = json.loads((run_dir / "scenario.json").read_text()) if (run_dir / "scenario.json").exists() else {}
    subs = [(re.compile(re.escape(str(run_dir))), "<run>"),
            (re.compile(r"--grpc-port=\d+"), "--grpc-port=<port>"),
            (_TOKEN, r"\1<token>")]  # fmt: skip
    roles: dict[str, list[dict]] = {}
    for f in sorted((run_dir / "records").glob("*.jsonl")):
        for line in f.read_text().splitlines():
            if line.strip():
                rec = json.loads(line)
                roles.setdefault(rec["role"], []).append(rec)
    out: dict[str, list[dict]] = {}
    for role, recs in roles.items():
        recs.sort(key=lambda r: (r["t"], r["seq"]))
        events = []
        for r in recs:
            if r["kind"] in IGNORED_KINDS or (r["kind"] == "rpc" and r.get("code") == "UNAVAILABLE"):
                continue
            e = {k: v for k, v in r.items() if k not in ("role", "seq", "t")}
            if e["kind"] == "exception":
                e["traceback"] = e.get("traceback", "").strip().splitlines()[-1:]  # the error line
            e = _scrub(e, subs)
            if events and _key(events[-1]) == _key(e):
                continue  # the same poll, the same answer
            events.append(e)
        out[role] = events
    out["_meta"] = [meta]
    return out


def _key(e: dict) -> str:
    return json.dumps({k: v for k, v in e.items() if not k.endswith("_hex")}, sort_keys=True)


def _label(x) -> str:
    if isinstance(x, dict):
        if "title" in x:
            return f"{x['title']}@{x.get('start')}"
        for k in ("id", "taskid", "runid", "nodeid"):
            if k in x:
                return str(x[k])
    return json.dumps(x, sort_keys=True)[:60]


def _same_multiset(a: list, b: list) -> bool:
    """The same elements, in any order; a key that only numbers the elements by position
    (run_event.id; MessageToDict leaves out the 0) is not part of an element."""

    def positional(xs, k):
        return all(isinstance(x, dict) and x.get(k, 0) == i for i, x in enumerate(xs))

    keys = {k for x in a + b if isinstance(x, dict) for k in x}
    drop = {k for k in keys if positional(a, k) and positional(b, k)}

    def canon(xs):
        return sorted(json.dumps({k: v for k, v in x.items() if k not in drop} if isinstance(x, dict)
                                 else x, sort_keys=True) for x in xs)  # fmt: skip

    return len(a) == len(b) and canon(a) == canon(b)


_CHUNKS = re.compile(r"<[^<>]*>")


def _paths(a, b, path: str = "") -> list[tuple[str, object, object, list[str]]]:
    """(path, ours, original, items) for every leaf that differs ("<absent>" where one side
    lacks it); a list holding the same elements in another order is one difference."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in list(a) + [k for k in b if k not in a]:
            sub = f"{path}.{k}" if path else k
            out += _paths(a.get(k, "<absent>"), b.get(k, "<absent>"), sub)
        return out
    if isinstance(a, list) and isinstance(b, list):
        if a != b and _same_multiset(a, b):
            return [(path, "order " + str([_label(x) for x in a]),
                     "order " + str([_label(x) for x in b]), ["5"])]  # fmt: skip
        out = []
        for i in range(max(len(a), len(b))):
            out += _paths(a[i] if i < len(a) else "<absent>", b[i] if i < len(b) else "<absent>",
                          f"{path}[{i}]")  # fmt: skip
        return out
    if a == b:
        return []
    items = []
    if isinstance(a, str) and isinstance(b, str):
        ca, cb = _CHUNKS.findall(a), _CHUNKS.findall(b)
        if ca and ca != cb and sorted(ca) == sorted(cb):
            items.append("5")  # the same <...> entries, in another order
        ma, mb = _MICROS.search(a), _MICROS.search(b)
        if ma and (not mb or mb.group(0) != ma.group(0)):
            items.append("10")
        if path.endswith("lastActive") and "server-clock" in a + b:
            items.append("10")
    if "scavengerModeActive" in path or path.endswith(".found"):
        items.append("9")
    return [(path, a, b, items)]


_MICROS = re.compile(r"\d{2}:\d{2}:\d{2}\.\d{6}")


def _camel(snake: str) -> str:
    head, *rest = snake.split("_")
    return head + "".join(w.title() for w in rest)


def _value_at(obj, path: str):
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        if part.startswith("["):
            i = int(part[1:-1])
            obj = obj[i] if isinstance(obj, list) and i < len(obj) else None
        else:
            obj = obj.get(_camel(part)) if isinstance(obj, dict) else None
    return obj


def _presence(o: dict, g: dict) -> dict | None:
    """Fields present on one wire and not on the other while both decode to the same value:
    the presence difference MessageToDict hides (a proto3 optional set to "")."""
    po, pg = set(o.get("present") or []), set(g.get("present") or [])
    only_o, only_g = [], []
    for p in sorted(po ^ pg):
        vo, vg = _value_at(o.get("response"), p), _value_at(g.get("response"), p)
        if vo == vg or (vo in (None, "", 0, False) and vg in (None, "", 0, False)):
            (only_o if p in po else only_g).append(p)
    if not only_o and not only_g:
        return None
    return {"path": "fields present on the wire", "ours_only": only_o, "original_only": only_g,
            "items": ["5"]}  # fmt: skip


def _pair(o: dict, g: dict) -> tuple[list[str], list[dict]]:
    """Item tags and field differences of two events at the same place."""
    items: set[str] = set()
    fields = []
    if o.get("kind") == "rpc":
        if o.get("code") != "OK" and g.get("code") == "OK":
            details = (o.get("details") or "").lower()
            items.add("4" if "longer than" in details else
                      "6" if o.get("code") == "UNAUTHENTICATED" else "7")  # fmt: skip
        pres = _presence(o, g)
        if pres:
            fields.append(pres)
            items.add("5")
    strip = ("present", "response_hex", "request_hex")
    for path, ov, gv, tags in _paths({k: v for k, v in o.items() if k not in strip},
                                     {k: v for k, v in g.items() if k not in strip}):  # fmt: skip
        items.update(tags)
        fields.append({"path": path, "ours": ov, "original": gv, "items": tags})
    return sorted(items), fields


def _crash_items(e: dict) -> set[str]:
    text = json.dumps(e)
    out = set()
    if "scavengerModeActive" in text:
        out.add("9")
    if "RetriedForever" in text:
        out.add("7")
    return out


def _describe(e: dict | None) -> str:
    if e is None:
        return "(nothing)"
    if e["kind"] == "rpc":
        s = f"{e['rpc']}({json.dumps(e.get('request'), sort_keys=True)}) -> {e['code']}"
        if e["code"] != "OK":
            return s + f" {e.get('details')!r}"
        return s + f" {json.dumps(e.get('response'), sort_keys=True)}"
    if e["kind"] == "exception":
        return f"EXCEPTION {e.get('error')} {e.get('traceback')}"
    rest = {k: v for k, v in e.items() if k != "kind"}
    return f"{e['kind']} {json.dumps(rest, sort_keys=True)}"


def _same_place(o: dict, g: dict) -> bool:
    return o.get("kind") == g.get("kind") and o.get("rpc") == g.get("rpc") and \
        o.get("op") == g.get("op")  # fmt: skip


def compare(ours: dict[str, list[dict]], original: dict[str, list[dict]]) -> list[dict]:
    diffs = []
    for role in sorted(set(ours) | set(original)):
        if role == "_meta":
            continue
        a, b = ours.get(role, []), original.get(role, [])
        ka, kb = [_key(e) for e in a], [_key(e) for e in b]
        crashed: set[str] = set()
        for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, ka, kb, autojunk=False).get_opcodes():
            if op == "equal":
                continue
            i, j = i1, j1
            while i < i2 and j < j2 and _same_place(a[i], b[j]):
                items, fields = _pair(a[i], b[j])
                diffs.append({"role": role, "at": j, "call": _describe(b[j]),
                              "ours": _describe(a[i]), "original": _describe(b[j]),
                              "fields": fields, "items": items,
                              "ours_hex": a[i].get("response_hex"),
                              "original_hex": b[j].get("response_hex")})  # fmt: skip
                i, j = i + 1, j + 1
            if i < i2 or j < j2:
                lone_o, lone_g = a[i:i2], b[j:j2]
                items = set()
                for e in lone_o + lone_g:
                    if e.get("kind") == "exception":
                        items |= _crash_items(e)
                crashed |= items
                diffs.append({"role": role, "at": j, "call": None,
                              "ours": [_describe(e) for e in lone_o],
                              "original": [_describe(e) for e in lone_g],
                              "fields": [], "items": sorted(items | crashed)})  # fmt: skip
    return diffs


def render(diffs: list[dict], limit: int = 0) -> str:
    lines = [f"{len(diffs)} difference(s) between our orchestrator and the original, "
             "as the original node agent saw them:"]  # fmt: skip
    crashes = sorted({d["role"] for d in diffs if any("EXCEPTION" in e for e in
                      (d["ours"] if isinstance(d["ours"], list) else [d["ours"]]))})  # fmt: skip
    if crashes:
        lines.append(f"(the original agent crashed against ours in {', '.join(crashes)}; "
                     "what it did not do then is missing from the roles that follow)")  # fmt: skip
    for d in diffs[: limit or None]:
        tag = ", ".join(f"issue 14 item {i}" for i in d["items"]) or "not an issue-14 item"
        lines.append(f"- [{tag}] {d['role']} #{d['at']}:")
        if d["call"] is not None:
            lines.append(f"    call: {d['call'][:400]}")
            for f in d["fields"]:
                if "ours_only" in f:
                    lines.append(f"    {f['path']}: only ours {f['ours_only']}, "
                                 f"only the original {f['original_only']}")  # fmt: skip
                else:
                    lines.append(f"    {f['path']}: ours {json.dumps(f['ours'])[:300]}, "
                                 f"original {json.dumps(f['original'])[:300]}")  # fmt: skip
            if d["ours_hex"] and d["original_hex"] and d["ours_hex"] != d["original_hex"]:
                lines.append(f"    bytes: ours {d['ours_hex'][:240]}")
                lines.append(f"       original {d['original_hex'][:240]}")
        else:
            for side in ("ours", "original"):
                events = d[side]
                lines.append(f"    {side} only ({len(events)}):" if events else f"    {side}: -")
                lines += [f"      {e[:300]}" for e in events[:12]]
                if len(events) > 12:
                    lines.append(f"      ... {len(events) - 12} more")
    if limit and len(diffs) > limit:
        lines.append(f"... and {len(diffs) - limit} more")
    return "\n".join(lines)


def main() -> None:
    ours, original = load(Path(sys.argv[1])), load(Path(sys.argv[2]))
    diffs = compare(ours, original)
    print(render(diffs))
    sys.exit(1 if diffs else 0)


if __name__ == "__main__":
    main()
