-- Run against rules that never read the body: Weir answers the first body
-- chunk with SMFIR_SKIP (the MTA sends no more), and still decides and
-- edits at the end of the message.
local t = dofile(dir .. "/lib.lua")

local conn = t.open()
-- These rules refuse only at MAIL: DATA and the end of the headers get no
-- reply (miltertest reports "continue" for them), while MAIL and the first
-- body chunk, for the skip, keep theirs.
for name, flag in pairs({ NR_DATA = SMFIP_NR_DATA, NR_EOH = SMFIP_NR_EOH }) do
  if not mt.test_option(conn, flag) then t.fail("SMFIP_" .. name .. " not negotiated") end
end
for name, flag in pairs({ NR_MAIL = SMFIP_NR_MAIL, NR_BODY = SMFIP_NR_BODY }) do
  if mt.test_option(conn, flag) then t.fail("SMFIP_" .. name .. " negotiated") end
end
t.envelope(conn, "QSKIP1", "alice@example.org", { "bob@example.test" })
t.ok(mt.data(conn), "data")
t.expect(conn, SMFIR_CONTINUE, "data")
for _, h in ipairs(t.headers("quarterly report")) do
  t.ok(mt.header(conn, h[1], h[2]), "header")
  t.expect(conn, SMFIR_CONTINUE, "header " .. h[1])
end
t.ok(mt.eoh(conn), "eoh")
t.expect(conn, SMFIR_CONTINUE, "eoh")
t.ok(mt.bodystring(conn, "first chunk\r\n"), "body")
t.expect(conn, SMFIR_SKIP, "first body chunk")
t.ok(mt.eom(conn), "eom")
t.expect(conn, SMFIR_ACCEPT, "eom")
t.check(conn, "tag of the header rule", true, MT_HDRADD, "X-Weir-Tags", "report")
mt.disconnect(conn)

t.pass("body_skip")
