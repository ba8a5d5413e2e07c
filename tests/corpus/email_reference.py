#!/usr/bin/env python3
"""Python's `email` package's reading of messages, as JSON lines.

Usage: email_reference.py ROOT FILE...   (or the file names on stdin, one a line)

For each FILE (relative to ROOT) prints one JSON object:

  {"file": FILE,
   "subject": str | null, "from": [addr_spec], "to": [addr_spec],
   "x_mailer": [str],                      # header("X-Mailer"), decoded
   "leaves": [{"html": bool, "in_body": bool, "text": str,
               "encoded_line": str | null}],   # a line of the data as
                                               # written (base64 or
                                               # quoted-printable escapes)
   "attachments": [{"name": str, "type": str, "size": int | null}],
   "error": str | null}

The message is parsed by `email.message_from_bytes(policy=policy.default)`.
The walk over its parts applies Weir's documented policy (docs/language.md,
"The message model") to Python's tree: which parts are text and which are
attachments, which `multipart/alternative` alternative is read. Everything
about reading MIME -- boundaries, transfer encodings, charsets, file names
-- is Python's. The text of a part with no charset, or an unknown one, is
read as UTF-8 (as Weir does); a field Python cannot read is null or [].
"""

import codecs
import email
import email.policy
import json
import re
import sys


# Labels that the WHATWG Encoding Standard (which Weir follows, as mail
# clients and browsers do) reads as a superset of what Python's codec of
# the same name reads.
WHATWG = {
    **dict.fromkeys(
        ["us-ascii", "ascii", "ansi_x3.4-1968", "iso-8859-1", "iso8859-1",
         "iso_8859-1", "latin1", "latin-1", "l1", "cp819", "ibm819"],
        "cp1252",
    ),
    **dict.fromkeys(["iso-8859-9", "iso8859-9", "latin5", "l5"], "cp1254"),
    **dict.fromkeys(["tis-620", "iso-8859-11", "iso8859-11"], "cp874"),
    **dict.fromkeys(["gb2312", "gbk", "x-gbk", "chinese", "csgb2312"], "gb18030"),
    **dict.fromkeys(["euc-kr", "ks_c_5601-1987", "ks_c_5601", "ksc5601"], "cp949"),
    **dict.fromkeys(["shift_jis", "shift-jis", "sjis", "x-sjis"], "cp932"),
    **dict.fromkeys(["big5", "big5-hkscs", "cn-big5", "x-x-big5"], "cp950"),
}


def c1_controls(error):
    """WHATWG's windows-1252 maps the five bytes cp1252 leaves undefined
    to the C1 control of the same value."""
    if isinstance(error, UnicodeDecodeError):
        bad = error.object[error.start : error.end]
        return "".join(chr(b) for b in bad), error.end
    raise error


codecs.register_error("c1-controls", c1_controls)


def text_of(part):
    payload = part.get_payload(decode=True) or b""
    charset = (part.get_content_charset() or "utf-8").strip().lower()
    charset = WHATWG.get(charset, charset)
    if charset == "cp1252":
        return payload.decode("cp1252", errors="c1-controls")
    try:
        return payload.decode(charset, errors="replace")
    except LookupError:
        return payload.decode("utf-8", errors="replace")


def is_enclosed_message(part):
    """A `message/*` part (Python parses `message/rfc822` and
    `message/delivery-status` into parts): one attachment to Weir."""
    return part.get_content_maintype() == "message" and part.is_multipart()


def leaf_kind(part):
    """'plain', 'html' or 'attachment' for a leaf, as Weir classifies it."""
    maintype = part.get_content_maintype()
    textual = maintype in ("text", "multipart")
    if not textual or part.get_content_disposition() == "attachment":
        return "attachment"
    return "html" if part.get_content_subtype() == "html" else "plain"


def subtree_has(part, want):
    if is_enclosed_message(part):
        return False
    if part.is_multipart():
        return any(subtree_has(child, want) for child in part.get_payload())
    return leaf_kind(part) == want


def walk(part, in_body, out):
    if is_enclosed_message(part):
        out["attachments"].append(
            {"name": filename(part), "type": part.get_content_type(), "size": None}
        )
        return
    if part.is_multipart():
        children = part.get_payload()
        chosen = None
        alternative = part.get_content_subtype() == "alternative"
        if alternative:
            chosen = next((c for c in children if subtree_has(c, "plain")), None)
            if chosen is None:
                chosen = next((c for c in children if subtree_has(c, "html")), None)
            if chosen is None and children:
                chosen = children[0]
        for child in children:
            walk(child, in_body and (not alternative or child is chosen), out)
        return
    kind = leaf_kind(part)
    if kind == "attachment":
        payload = part.get_payload(decode=True)
        out["attachments"].append(
            {
                "name": filename(part),
                "type": part.get_content_type(),
                "size": len(payload) if isinstance(payload, bytes) else None,
            }
        )
    else:
        out["leaves"].append(
            {
                "html": kind == "html",
                "in_body": in_body,
                "text": text_of(part),
                "encoded_line": encoded_line(part),
            }
        )


QP_ESCAPE = re.compile(r"=[0-9A-F]{2}")


def encoded_line(part):
    """A line of a base64 or quoted-printable part's data as written, that
    decoding changes: the first base64 line of 16 characters or more, the
    first quoted-printable line holding an escape. None for other parts."""
    cte = str(part.get("content-transfer-encoding", "")).strip().lower()
    raw = part.get_payload(decode=False)
    if not isinstance(raw, str):
        return None
    for line in raw.splitlines():
        line = line.strip()
        if cte == "base64" and len(line) >= 16:
            return line
        if cte == "quoted-printable" and len(line) >= 8 and QP_ESCAPE.search(line):
            return line
    return None


def filename(part):
    try:
        return (part.get_filename() or "").strip()
    except Exception:  # noqa: BLE001 -- a broken parameter is no name
        return ""


def addresses(msg, name):
    out = []
    try:
        for header in msg.get_all(name) or []:
            out.extend(a.addr_spec for a in header.addresses)
    except Exception:  # noqa: BLE001
        return None
    return out


# C1 controls as windows-1252 reads their byte: what an encoded word in
# ISO-8859-1 decodes to under the WHATWG labels (Python reads them as C1).
C1_AS_CP1252 = {
    c: bytes([c]).decode("cp1252", errors="c1-controls") for c in range(0x80, 0xA0)
}


def decoded_all(msg, name):
    try:
        return [str(v).translate(C1_AS_CP1252) for v in msg.get_all(name) or []]
    except Exception:  # noqa: BLE001
        return None


def read(root, name):
    record = {"file": name, "error": None, "leaves": [], "attachments": []}
    with open(f"{root}/{name}", "rb") as f:
        data = f.read()
    try:
        msg = email.message_from_bytes(data, policy=email.policy.default)
        subjects = decoded_all(msg, "Subject")
        record["subject"] = subjects[0] if subjects else ("" if subjects == [] else None)
        record["from"] = addresses(msg, "From")
        record["to"] = addresses(msg, "To")
        record["x_mailer"] = decoded_all(msg, "X-Mailer")
        walk(msg, True, record)
    except Exception as error:  # noqa: BLE001 -- reported, not fatal
        record["error"] = f"{type(error).__name__}: {error}"
    return record


def clean(value):
    """Strings as UTF-8: bytes Python kept as surrogate escapes are read as
    UTF-8, invalid ones becoming U+FFFD (as Weir reads raw 8-bit headers)."""
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    if isinstance(value, list):
        return [clean(v) for v in value]
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    return value


def main():
    root = sys.argv[1]
    names = sys.argv[2:] or [line.strip() for line in sys.stdin if line.strip()]
    out = sys.stdout
    for name in names:
        out.write(json.dumps(clean(read(root, name)), ensure_ascii=False))
        out.write("\n")


if __name__ == "__main__":
    main()
