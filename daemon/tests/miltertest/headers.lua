-- Header actions as milter modifications: add_header, set_header,
-- remove_header, prepend_subject, tag (X-Weir-Tags), fileinto
-- (X-Weir-Folder); copies of Weir's own headers sent in by the client are
-- removed, and a header value cannot inject a line break.
local t = dofile(dir .. "/lib.lua")

local conn, stage, reply = t.message({
  subject = "HEADERS test",
  headers = {
    { "X-Set", "old one" }, { "X-Set", "old two" }, { "X-Remove", "bye" },
    { "X-Weir-Tags", "forged" }, { "X-Weir-Folder", "Evil" },
  },
})
t.answered("header edits", stage, reply, "eom", SMFIR_ACCEPT)
t.check(conn, "add_header X-Added", true, MT_HDRADD, "X-Added", "one")
t.check(conn, "add_header X-Note on one line", true, MT_HDRADD, "X-Note", "line one line two")
t.check(conn, "set_header X-Set (first copy changed)", true, MT_HDRCHANGE, "X-Set", "new")
t.check(conn, "set_header X-Set (second copy deleted)", true, MT_HDRDELETE, "X-Set")
t.check(conn, "remove_header X-Remove", true, MT_HDRDELETE, "X-Remove")
t.check(conn, "prepend_subject", true, MT_HDRCHANGE, "Subject", "[W] HEADERS test")
t.check(conn, "forged X-Weir-Tags removed", true, MT_HDRDELETE, "X-Weir-Tags")
t.check(conn, "forged X-Weir-Folder removed", true, MT_HDRDELETE, "X-Weir-Folder")
t.check(conn, "X-Weir-Tags", true, MT_HDRADD, "X-Weir-Tags", "billing, vip")
t.check(conn, "X-Weir-Folder", true, MT_HDRADD, "X-Weir-Folder", "Support/Billing")
t.check(conn, "quarantine", false, MT_QUARANTINE)
mt.disconnect(conn)

-- set_header on a missing header adds it; prepend_subject without a
-- Subject adds one.
conn = t.open()
t.envelope(conn, "QHDR2", "alice@example.org", { "bob@example.test" })
stage, reply = t.content(conn, { { "From", "alice@example.org" }, { "X-Trigger", "HEADERS" } }, "Hi.\r\n")
t.answered("edits without the headers", stage, reply, "eom", SMFIR_ACCEPT)
t.check(conn, "set_header adds", true, MT_HDRADD, "X-Set", "new")
t.check(conn, "prepend_subject adds", true, MT_HDRADD, "Subject", "[W]")
mt.disconnect(conn)

t.pass("headers")
