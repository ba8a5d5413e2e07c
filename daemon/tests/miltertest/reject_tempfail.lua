-- reject and tempfail, with custom and default code, status and text, each
-- answered at the first stage where the decision is final (docs/language.md, "Stages").
local t = dofile(dir .. "/lib.lua")

-- A sender rule is final at MAIL FROM: answered there. A custom reply is
-- SMFIR_REPLYCODE (its text is checked through Postfix in postfix.rs;
-- miltertest only keeps the text of end-of-message replies).
local conn = t.open()
-- The body chunks' replies are negotiated away (a rule reads the body, so
-- none is skipped): body refusals below still come, at the end.
if not mt.test_option(conn, SMFIP_NR_BODY) then t.fail("SMFIP_NR_BODY not negotiated") end
t.ok(mt.macro(conn, SMFIC_MAIL, "i", "QREJ1"), "macro i")
t.ok(mt.mailfrom(conn, "<spammer@blocked.test>"), "mailfrom")
t.expect(conn, SMFIR_REPLYCODE, "blocked sender at MAIL FROM")
-- The same connection goes on with the next message, as Postfix does.
t.ok(mt.abort(conn), "abort")
t.envelope(conn, "QREJ2", "alice@example.org", { "bob@example.test" })
local stage, reply = t.content(conn, t.headers("second message on the connection"), "Hi.\r\n")
t.answered("next message on the connection", stage, reply, "eom", SMFIR_ACCEPT)
mt.disconnect(conn)

-- A recipient rule is final once every recipient is known: each RCPT gets
-- "continue", DATA gets the tempfail.
conn = t.open()
t.envelope(conn, "QREJ3", "alice@example.org", { "bob@example.test", "nobody@example.test" })
stage, reply = t.content(conn, t.headers("hello"), "Hi.\r\n")
t.answered("recipient rule", stage, reply, "data", SMFIR_REPLYCODE)
mt.disconnect(conn)

-- A header rule is answered at the end of the headers.
conn, stage, reply = t.message({ subject = "HEADERREJECT please", queue_id = "QREJ4" })
t.answered("header rule", stage, reply, "eoh", SMFIR_REPLYCODE)
mt.disconnect(conn)

-- Body rules: answered at the end of the message, with the whole reply.
conn, stage, reply = t.message({ subject = "a body", body = "X5O!P EICAR inside\r\n" })
t.answered("custom reject", stage, reply, "eom", SMFIR_REPLYCODE)
t.smtp_reply(conn, "custom reject", "554", "5.7.9", "Virus found: 100%% sure")
t.check(conn, "header added to a rejected message", false, MT_HDRADD)
mt.disconnect(conn)

conn, stage, reply = t.message({ subject = "a body", body = "DEFAULTREJECT\r\n" })
t.answered("default reject", stage, reply, "eom", SMFIR_REPLYCODE)
t.smtp_reply(conn, "default reject", "550", "5.7.1", "Message rejected")
mt.disconnect(conn)

conn, stage, reply = t.message({ subject = "a body", body = "COMELATER\r\n" })
t.answered("custom tempfail", stage, reply, "eom", SMFIR_REPLYCODE)
t.smtp_reply(conn, "custom tempfail", "452", "4.3.1", "Come back later")
mt.disconnect(conn)

conn, stage, reply = t.message({ subject = "a body", body = "DEFAULTTEMPFAIL\r\n" })
t.answered("default tempfail", stage, reply, "eom", SMFIR_REPLYCODE)
t.smtp_reply(conn, "default tempfail", "451", "4.7.1", "Try again later")
mt.disconnect(conn)

t.pass("reject_tempfail")
