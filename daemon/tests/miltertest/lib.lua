-- Helpers shared by the miltertest scripts of daemon/tests/miltertest.rs,
-- loaded with `local t = dofile(dir .. "/lib.lua")`.
-- Run a script by hand against `weir serve` (milter on 127.0.0.1:PORT):
--   miltertest -D port=PORT -D dir=daemon/tests/miltertest -s daemon/tests/miltertest/NAME.lua
-- Exit status 0 and a last line "PASS NAME" mean every check held.
--
-- PITFALL: Debian's miltertest (OpenDKIM 1.6.0) exits 1 WITHOUT printing the
-- Lua error, so every failure goes through t.fail(), which prints it first.
-- PITFALL: mt.eom_check() counts an explicit nil as an argument (and then
-- fails with "Invalid argument"): pass exactly the arguments the check takes.
-- MT_RCPTADD, MT_RCPTDELETE and MT_SMTPREPLY need at least one.

local t = {}

if port == nil then error("run with -D port=N") end
t.sock = "inet:" .. port .. "@127.0.0.1" -- NOTE: inet:PORT@HOST order

function t.fail(msg)
  mt.echo("FAIL: " .. msg)
  error(msg)
end

-- miltertest functions return nil on success, else an error text.
function t.ok(rc, what)
  if rc ~= nil then t.fail(what .. ": " .. tostring(rc)) end
end

local reply_names = {
  [SMFIR_CONTINUE] = "continue", [SMFIR_ACCEPT] = "accept", [SMFIR_REJECT] = "reject",
  [SMFIR_TEMPFAIL] = "tempfail", [SMFIR_DISCARD] = "discard",
  [SMFIR_REPLYCODE] = "replycode (custom SMTP reply)", [SMFIR_SKIP] = "skip",
}

function t.reply_name(r)
  return reply_names[r] or tostring(r)
end

function t.expect(conn, want, what)
  local got = mt.getreply(conn)
  if got ~= want then
    t.fail(what .. ": expected " .. t.reply_name(want) .. ", got " .. t.reply_name(got))
  end
end

-- A new connection, negotiated with miltertest's defaults (protocol 6,
-- every action and step offered, SMFIR_SKIP included), with connect and
-- HELO sent. Weir negotiates no SMFIP_NO* step, so every stage is sent.
function t.open()
  local conn = mt.connect(t.sock, 20, 0.25)
  if conn == nil then t.fail("mt.connect(" .. t.sock .. ")") end
  t.ok(mt.negotiate(conn, nil, nil, nil), "negotiate")
  t.ok(mt.conninfo(conn, "client.example.test", "192.0.2.7"), "conninfo")
  t.expect(conn, SMFIR_CONTINUE, "conninfo")
  t.ok(mt.helo(conn, "client.example.test"), "helo")
  t.expect(conn, SMFIR_CONTINUE, "helo")
  return conn
end

-- MAIL FROM (with the queue id macro "i", as Postfix sends it) and RCPT TO
-- for each recipient; each must get "continue".
function t.envelope(conn, queue_id, from, rcpts)
  t.ok(mt.macro(conn, SMFIC_MAIL, "i", queue_id), "macro i")
  t.ok(mt.mailfrom(conn, "<" .. from .. ">"), "mailfrom")
  t.expect(conn, SMFIR_CONTINUE, "mailfrom " .. from)
  for _, rcpt in ipairs(rcpts) do
    t.ok(mt.rcptto(conn, "<" .. rcpt .. ">"), "rcptto")
    t.expect(conn, SMFIR_CONTINUE, "rcptto " .. rcpt)
  end
end

-- DATA, the headers ({{name, value}, ...}), end of headers, one body chunk
-- and end of message, stopping at the first reply that is not "continue"
-- (or "skip" for the body). Returns the stage that got it and the reply.
function t.content(conn, headers, body)
  t.ok(mt.data(conn), "data")
  local r = mt.getreply(conn)
  if r ~= SMFIR_CONTINUE then return "data", r end
  for _, h in ipairs(headers) do
    t.ok(mt.header(conn, h[1], h[2]), "header " .. h[1])
    r = mt.getreply(conn)
    if r ~= SMFIR_CONTINUE then return "header", r end
  end
  t.ok(mt.eoh(conn), "eoh")
  r = mt.getreply(conn)
  if r ~= SMFIR_CONTINUE then return "eoh", r end
  t.ok(mt.bodystring(conn, body), "body")
  r = mt.getreply(conn)
  if r ~= SMFIR_CONTINUE and r ~= SMFIR_SKIP then return "body", r end
  t.ok(mt.eom(conn), "eom")
  return "eom", mt.getreply(conn)
end

-- The usual headers of a test message with this Subject, plus `extra`.
function t.headers(subject, extra)
  local h = {
    { "From", "Alice <alice@example.org>" },
    { "To", "bob@example.test" },
    { "Subject", subject },
    { "Message-ID", "<" .. subject:gsub("%W", ".") .. "@example.org>" },
  }
  for _, e in ipairs(extra or {}) do table.insert(h, e) end
  return h
end

-- One whole message on its own connection: returns the connection (for
-- eom_check), the stage that answered and the reply.
function t.message(m)
  local conn = t.open()
  t.envelope(conn, m.queue_id or "QTEST", m.from or "alice@example.org", m.rcpts or { "bob@example.test" })
  local stage, reply = t.content(conn, t.headers(m.subject, m.headers), m.body or "Hello.\r\n")
  return conn, stage, reply
end

-- Asserts the stage and reply of a t.message() or t.content() result.
function t.answered(what, stage, reply, want_stage, want_reply)
  if stage ~= want_stage or reply ~= want_reply then
    t.fail(what .. ": expected " .. t.reply_name(want_reply) .. " at " .. want_stage
      .. ", got " .. t.reply_name(reply) .. " at " .. stage)
  end
end

-- Asserts an end-of-message modification (or, with `present` false, its
-- absence). `args` are exactly the arguments of that mt.eom_check() form.
function t.check(conn, what, present, op, ...)
  local called, found = pcall(mt.eom_check, conn, op, ...)
  if not called then t.fail(what .. ": mt.eom_check: " .. tostring(found)) end
  if found ~= present then
    t.fail(what .. (present and ": missing" or ": present but must not be"))
  end
end

-- The custom SMTP reply sent at the end of the message, whole.
function t.smtp_reply(conn, what, code, xcode, text)
  if not mt.eom_check(conn, MT_SMTPREPLY, code, xcode, text) then
    t.fail(what .. ": expected the reply '" .. code .. " " .. xcode .. " " .. text .. "'")
  end
end

function t.pass(name)
  mt.echo("PASS " .. name)
end

return t
