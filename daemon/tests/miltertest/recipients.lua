-- Envelope actions as milter modifications: add_rcpt, remove_rcpt and
-- redirect (every recipient removed, the new one added).
local t = dofile(dir .. "/lib.lua")
local two = { "bob@example.test", "carol@example.test" }

local conn, stage, reply = t.message({ subject = "ADDRCPT", rcpts = two })
t.answered("add_rcpt", stage, reply, "eom", SMFIR_ACCEPT)
t.check(conn, "add_rcpt", true, MT_RCPTADD, "<audit@example.test>")
t.check(conn, "no recipient removed", false, MT_RCPTDELETE, "<bob@example.test>")
mt.disconnect(conn)

conn, stage, reply = t.message({ subject = "REMOVERCPT", rcpts = two })
t.answered("remove_rcpt", stage, reply, "eom", SMFIR_ACCEPT)
t.check(conn, "remove_rcpt carol", true, MT_RCPTDELETE, "<carol@example.test>")
t.check(conn, "bob kept", false, MT_RCPTDELETE, "<bob@example.test>")
mt.disconnect(conn)

conn, stage, reply = t.message({ subject = "REDIRECT", rcpts = two })
t.answered("redirect", stage, reply, "eom", SMFIR_ACCEPT)
t.check(conn, "redirect removes bob", true, MT_RCPTDELETE, "<bob@example.test>")
t.check(conn, "redirect removes carol", true, MT_RCPTDELETE, "<carol@example.test>")
t.check(conn, "redirect adds archive", true, MT_RCPTADD, "<archive@example.test>")
mt.disconnect(conn)

t.pass("recipients")
