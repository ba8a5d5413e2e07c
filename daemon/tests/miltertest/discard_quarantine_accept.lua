-- The verdicts carried out at the end of the message: discard, quarantine
-- (SMFIR_QUARANTINE, then accept) and accept (which skips later rules).
local t = dofile(dir .. "/lib.lua")

local conn, stage, reply = t.message({ subject = "DROPME now" })
t.answered("discard", stage, reply, "eom", SMFIR_DISCARD)
t.check(conn, "header added to a discarded message", false, MT_HDRADD)
mt.disconnect(conn)

-- The queue id "QHOLD1" is checked in Weir's quarantine index by the Rust test.
conn, stage, reply = t.message({ subject = "HOLDME please", queue_id = "QHOLD1" })
t.answered("quarantine", stage, reply, "eom", SMFIR_ACCEPT)
t.check(conn, "quarantine with its reason", true, MT_QUARANTINE, "suspicious subject")
t.check(conn, "tag taken before the verdict", true, MT_HDRADD, "X-Weir-Tags", "held")
mt.disconnect(conn)

-- `accept` ends evaluation: the later rule that tags "late" does not run.
conn, stage, reply = t.message({ subject = "ACCEPTME LATE" })
t.answered("accept", stage, reply, "eom", SMFIR_ACCEPT)
t.check(conn, "tag of a rule after accept", false, MT_HDRADD, "X-Weir-Tags")
mt.disconnect(conn)

-- Without accept, that later rule does tag.
conn, stage, reply = t.message({ subject = "LATE only" })
t.answered("default accept", stage, reply, "eom", SMFIR_ACCEPT)
t.check(conn, "tag of the later rule", true, MT_HDRADD, "X-Weir-Tags", "late")
mt.disconnect(conn)

t.pass("discard_quarantine_accept")
