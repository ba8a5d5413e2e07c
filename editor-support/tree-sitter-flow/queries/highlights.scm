; Highlights for Flow (`.flow`), Weir's mail rule language.
;
; The word lists below (actions, fields, functions) are checked against the
; builtin registry by daemon/tests/editor_support.rs. Specific patterns come
; last: where two patterns capture one node, the later one wins.

(comment) @comment

; Reserved words (docs/language.md, "Lexical structure").
[
  "import"
  "let"
  "list"
  "map"
  "classifier"
  "learned"
  "file"
  "fn"
  "template"
  "rule"
  "test"
] @keyword

[
  "priority"
  "shadow"
] @keyword.modifier

[
  "when"
  "then"
  "else"
  "if"
] @keyword.conditional

[
  "and"
  "or"
  "not"
  "in"
  "under"
  "contains"
  "starts_with"
  "ends_with"
  "matches"
  "as"
  "exists"
  "all"
  "any"
  "with"
] @keyword.operator

[
  "true"
  "false"
] @boolean

; Test words (docs/language.md, "Tests"): contextual, keywords only inside `test`.
[
  "message"
  "envelope"
  "client"
  "expect"
  "from"
  "to"
  "ip"
  "helo"
  "verdict"
  "stage"
  "matched"
  "score"
  "now"
  "recipient"
  "rate"
  "duplicate"
  "classify"
] @keyword

(expect_statement
  verdict: (identifier) @keyword.return)

(expect_statement
  stage: (identifier) @constant.builtin)

(expect_statement
  rule: (identifier) @type)

; Declarations.
(rule_declaration
  name: (identifier) @type)

(template_declaration
  name: (identifier) @type)

(template_clause
  name: (identifier) @type)

(template_field
  key: (identifier) @property)

(let_declaration
  name: (identifier) @constant)

(list_declaration
  name: (identifier) @constant)

(map_declaration
  name: (identifier) @constant)

(lambda
  parameter: (identifier) @variable.parameter)

(lambda
  "=>" @operator)

(map_pair
  key: (string) @property)

(fn_declaration
  name: (identifier) @function)

(parameter
  name: (identifier) @variable.parameter)

(type
  name: (identifier) @type.builtin)

(map_entry
  key: (identifier) @property)

; Generic forms first: a later pattern wins over an earlier one for the same
; node (in the tree-sitter CLI and in Neovim alike).
(action
  name: (identifier) @function)

(call
  function: (identifier) @function.call)

(member_expression
  property: (identifier) @property)

; Actions (docs/language.md, "Rules and actions"): verdicts end evaluation.
(action
  name: (identifier) @keyword.return
  (#any-of? @keyword.return "accept" "reject" "tempfail" "discard" "quarantine" "stop"))

(action
  name: (identifier) @function.builtin
  (#any-of? @function.builtin
    "add_header" "set_header" "remove_header" "prepend_subject" "add_rcpt" "remove_rcpt"
    "redirect" "fileinto" "flag" "keep" "tag" "score" "notify" "reply" "log" "folder"))

; Builtin functions.
(call
  function: (identifier) @function.builtin
  (#any-of? @function.builtin
    "header" "count" "len" "lower" "upper" "trim" "rate" "duplicate" "auth_results" "matched"
    "split" "join" "replace" "first" "number" "addresses" "max" "min" "local" "time"))

; Fields of the message model (docs/language.md, "Expressions").
((member_expression
  object: (name) @variable.builtin
  property: (identifier) @variable.builtin) @_field
  (#any-of? @_field
    "client.ip" "client.name" "client.port" "auth.user" "envelope.from" "envelope.to" "body.html"
    "body.lines" "body.raw"))

((name) @variable.builtin
  (#any-of? @variable.builtin
    "helo" "tls" "recipient" "subject" "message_id" "from" "to" "cc" "reply_to" "sender"
    "date" "body" "attachments" "size" "score" "now"))

(comparison
  binding: (identifier) @variable)

; Literals.
[
  (string)
  (raw_string)
] @string

(escape_sequence) @string.escape

(interpolation
  "${" @punctuation.special
  "}" @punctuation.special)

(regex_pattern) @string.regexp

(regex_flags) @character.special

[
  (integer)
  (float)
  (size)
  (duration)
] @number

[
  (ip)
  (cidr)
] @constant

; Operators and punctuation.
[
  "=="
  "!="
  "<"
  "<="
  ">"
  ">="
  "+"
  "-"
  "="
] @operator

[
  "("
  ")"
  "["
  "]"
  "{"
  "}"
] @punctuation.bracket

[
  ","
  ";"
  ":"
  "."
] @punctuation.delimiter

; `reply template NAME every DURATION`: a contextual word.
(template_clause "every" @keyword)
