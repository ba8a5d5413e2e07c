-- Option negotiation: Weir asks for exactly the actions its rules can need
-- (docs/language.md, "Rules and actions"), negotiates no step away and asks for SMFIR_SKIP;
-- it negotiates away the replies these rules never need (docs/serve.md,
-- "Round trips"); a message no rule matches is accepted with no modification.
local t = dofile(dir .. "/lib.lua")

local conn = mt.connect(t.sock, 20, 0.25)
if conn == nil then t.fail("mt.connect(" .. t.sock .. ")") end
t.ok(mt.negotiate(conn, nil, nil, nil), "negotiate")

local wanted = {
  ADDHDRS = SMFIF_ADDHDRS, CHGHDRS = SMFIF_CHGHDRS, ADDRCPT = SMFIF_ADDRCPT,
  DELRCPT = SMFIF_DELRCPT, QUARANTINE = SMFIF_QUARANTINE,
}
for name, flag in pairs(wanted) do
  if not mt.test_action(conn, flag) then t.fail("SMFIF_" .. name .. " not requested") end
end
-- Weir never rewrites a body.
if mt.test_action(conn, SMFIF_CHGBODY) then t.fail("SMFIF_CHGBODY requested") end

-- A skipped step would make Postfix send that stage's macros with no reply
-- expected, and stall on the filter's delayed ACK (harness REPORT 4b).
local steps = {
  NOCONNECT = SMFIP_NOCONNECT, NOHELO = SMFIP_NOHELO, NOMAIL = SMFIP_NOMAIL,
  NORCPT = SMFIP_NORCPT, NOBODY = SMFIP_NOBODY, NOHDRS = SMFIP_NOHDRS,
  NOEOH = SMFIP_NOEOH, NODATA = SMFIP_NODATA, NOUNKNOWN = SMFIP_NOUNKNOWN,
  -- These rules can refuse at MAIL, at DATA (a recipient rule) and at the
  -- end of the headers: those keep their replies.
  NR_MAIL = SMFIP_NR_MAIL, NR_DATA = SMFIP_NR_DATA, NR_EOH = SMFIP_NR_EOH,
}
for name, flag in pairs(steps) do
  if flag == nil then t.fail("miltertest lacks SMFIP_" .. name) end
  if mt.test_option(conn, flag) then t.fail("SMFIP_" .. name .. " negotiated") end
end
if not mt.test_option(conn, SMFIP_SKIP) then t.fail("SMFIP_SKIP not requested") end
-- Connect, HELO, each recipient, each header, unknown commands and (a rule
-- reads the body) each body chunk can only continue: no reply.
local quiet = {
  NR_CONN = SMFIP_NR_CONN, NR_HELO = SMFIP_NR_HELO, NR_RCPT = SMFIP_NR_RCPT,
  NR_HDR = SMFIP_NR_HDR, NR_UNKN = SMFIP_NR_UNKN, NR_BODY = SMFIP_NR_BODY,
}
for name, flag in pairs(quiet) do
  if flag == nil then t.fail("miltertest lacks SMFIP_" .. name) end
  if not mt.test_option(conn, flag) then t.fail("SMFIP_" .. name .. " not negotiated") end
end

-- Every stage answers "continue"; an unmatched message is accepted as is.
t.ok(mt.conninfo(conn, "client.example.test", "192.0.2.7"), "conninfo")
t.expect(conn, SMFIR_CONTINUE, "conninfo")
t.ok(mt.helo(conn, "client.example.test"), "helo")
t.expect(conn, SMFIR_CONTINUE, "helo")
t.envelope(conn, "QNEG1", "alice@example.org", { "bob@example.test" })
local stage, reply = t.content(conn, t.headers("nothing to see"), "Hello.\r\n")
t.answered("unmatched message", stage, reply, "eom", SMFIR_ACCEPT)
t.check(conn, "any header added", false, MT_HDRADD)
t.check(conn, "any header changed", false, MT_HDRCHANGE)
t.check(conn, "any header deleted", false, MT_HDRDELETE)
t.check(conn, "recipient removed", false, MT_RCPTDELETE, "<bob@example.test>")
t.check(conn, "quarantine", false, MT_QUARANTINE)
mt.disconnect(conn)

t.pass("negotiate")
