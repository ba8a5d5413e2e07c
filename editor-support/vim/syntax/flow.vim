" Vim syntax file
" Language:    Flow, the mail rule language of Weir (*.flow)
" Maintainer:  the Weir developers
"
" The word lists (reserved words, actions, fields, functions) are checked
" against grammar/src/flow.pest and the builtin registry by
" daemon/tests/editor_support.rs. Only `syn` lines count for that check.

if exists('b:current_syntax')
  finish
endif
let s:cpo_save = &cpo
set cpo&vim

syn case match
syn iskeyword @,48-57,_

" Reserved words (docs/language.md, "Lexical structure"). Keywords win over matches in Vim, so the
" words that are also fields or actions (score) are matches below; so are
" the words `:syn keyword` would read as its own options (contains).
syn keyword flowDeclaration import let list map file fn template rule test classifier
" `classifier NAME = learned [...]`: `learned` is a word only there.
syn match flowDeclaration /\%(\<classifier\s\+\h\w*\s*=\s*\)\@<=\<learned\>/
syn keyword flowModifier    priority shadow
syn keyword flowConditional when then else if
syn keyword flowOperatorWord and or not in
syn match   flowOperatorWord /\<\%(under\|contains\|starts_with\|ends_with\|matches\|as\|exists\|all\|any\|with\)\>/
syn keyword flowBoolean     true false

syn match flowComment /#.*$/ contains=flowTodo,@Spell
syn keyword flowTodo contained TODO FIXME XXX NOTE

" Names declared by rule, template, fn, let and list.
syn match flowRuleName     /\%(\<rule\s\+\)\@<=\h\w*/
syn match flowTemplateName /\%(\<template\s\+\)\@<=\h\w*/
" `reply template NAME every DURATION`: `every` is a word only there.
syn match flowEveryWord /\%(\<template\s\+\h\w*\s\+\)\@<=\<every\>/
syn match flowConstantName /\%(\<\%(let\|list\|map\|classifier\)\s\+\)\@<=\h\w*/
syn match flowType /\%(\%(:\s*\|<\)\)\@<=\<\%(bool\|int\|float\|string\|address\|ip\|cidr\|time\|duration\|regex\|list\)\>/

" Fields of the message model (docs/language.md, "Expressions"), not after a `.`; the dotted
" ones last, since the match defined last wins at one position.
syn match flowField /\.\@<!\<\%(helo\|tls\|recipient\|subject\|message_id\|from\|to\|cc\|reply_to\|sender\|date\|body\|attachments\|size\|score\|now\)\>\%(\s*(\)\@!/
syn match flowField /\.\@<!\<\%(client\.ip\|client\.name\|client\.port\|auth\.user\|envelope\.from\|envelope\.to\|body\.html\|body\.lines\|body\.raw\)\>/
syn match flowProperty /\%(\.\)\@<=\h\w*/

" Builtin functions, then any other call.
syn match flowCall     /\<\h\w*\ze\s*(/
syn match flowFunctionName /\%(\<fn\s\+\)\@<=\h\w*/
syn match flowFunction /\<\%(header\|count\|len\|lower\|upper\|trim\|rate\|duplicate\|auth_results\|matched\|split\|join\|replace\|first\|number\|addresses\|max\|min\|local\|time\)\ze\s*(/

" Actions (docs/language.md, "Rules and actions") at the start of a statement: at the start of a
" line, after `{`, `;`, `then`, `else`, or `expect [not]` in a test.
syn match flowAction  /\%(\%(^\|[{;]\|\<then\|\<else\|\<expect\%(\s\+not\)\=\)\s*\)\@<=\<\%(add_header\|set_header\|remove_header\|prepend_subject\|add_rcpt\|remove_rcpt\|redirect\|fileinto\|flag\|keep\|tag\|score\|notify\|reply\|log\)\>\%(\s*\%([.(\[<>=!]\|\<in\>\|\<contains\>\|\<matches\>\)\)\@!/
syn match flowVerdict /\%(\%(^\|[{;]\|\<then\|\<else\|\<expect\%(\s\+not\)\=\)\s*\)\@<=\<\%(accept\|reject\|tempfail\|discard\|quarantine\|stop\)\>/

" Numbers: sizes (K M G), durations (s m h d), decimals, integers; a number
" followed by other letters (10k) is an error.
syn match flowNumberError /\<\d\+\%(\.\d\+\)\=\a\w*\>/
syn match flowNumber   /\<\d\+\>/
syn match flowFloat    /\<\d\+\.\d\+\>/
syn match flowSize     /\<\d\+\%(\.\d\+\)\=[KMG]\>/
syn match flowDuration /\<\d\+\%(\.\d\+\)\=[smhd]\>/

" IP addresses and CIDR blocks.
syn match flowIP /\<\d\{1,3}\%(\.\d\{1,3}\)\{3}\%(\/\d\{1,3}\)\=\>/
syn match flowIP /\%(\w\|:\)\@<!\x\{0,4}\%(:\x\{0,4}\)\{2,7}\%(\/\d\{1,3}\)\=/

syn match flowOperator /=>\|==\|!=\|<=\|>=\|[<>+=-]/

" Strings with escapes and ${...} interpolation; """...""" spans lines.
syn cluster flowExpression contains=flowField,flowProperty,flowCall,flowFunction,flowOperatorWord,flowBoolean,flowNumber,flowFloat,flowSize,flowDuration,flowIP,flowOperator,flowString,flowTripleString,flowRegex
syn match  flowBadEscape /\\./ contained
syn match  flowEscape    /\\\%([nrt"\\$]\|u{\x\{1,6}}\)/ contained
syn region flowInterpolation matchgroup=flowInterpolationDelimiter start=/\${/ end=/}/ contained contains=@flowExpression
syn region flowString       start=/"/ skip=/\\./ end=/"/ oneline contains=flowBadEscape,flowEscape,flowInterpolation
syn region flowTripleString start=/"""/ skip=/\\./ end=/"""/ contains=flowBadEscape,flowEscape,flowInterpolation

" Regex literals /.../flags (there is no division operator).
syn region flowRegex matchgroup=flowRegexDelimiter start=+/\%(\%([^/\\]\|\\.\)\+/\)\@=+ skip=+\\.+ end=+/[imsx]*+ oneline contains=flowRegexEscape
syn match  flowRegexEscape /\\./ contained

" Test blocks (docs/language.md, "Tests"): their words are keywords only there.
syn region flowTestBlock matchgroup=flowBrace start=/\%(\<test\s\+"[^"]*"\s*\)\@<={/ end=/}/ contains=ALLBUT,flowTestWord,@flowInside,flowInterpolation,flowEscape,flowBadEscape,flowRegexEscape,flowTodo
syn cluster flowInside contains=flowTestBlock
syn match flowTestWord /\<\%(message\|envelope\|client\|expect\)\>/ contained containedin=flowTestBlock
" The world a test sets: words only at the start of a test line.
syn match flowTestWord /^\s*\zs\<\%(now\|recipient\|rate\|duplicate\)\>\ze\s*"/ contained containedin=flowTestBlock
syn match flowTestWord /^\s*\zs\<classify\>\ze\s\+\h/ contained containedin=flowTestBlock
syn match flowTestWord /\%(\<\%(envelope\|client\)\>.*\)\@<=\<\%(from\|to\|ip\|helo\)\>/ contained containedin=flowTestBlock
syn match flowVerdict  /\%(\<verdict\s\+\)\@<=\<\%(accept\|reject\|tempfail\|discard\|quarantine\)\>/ contained containedin=flowTestBlock
syn match flowTestWord /\%(\<expect\%(\s\+not\)\=\s\+\)\@<=\<\%(verdict\|stage\|matched\|score\|folder\)\>/ contained containedin=flowTestBlock

hi def link flowDeclaration            Keyword
hi def link flowModifier               StorageClass
hi def link flowConditional            Conditional
hi def link flowOperatorWord           Operator
hi def link flowBoolean                Boolean
hi def link flowComment                Comment
hi def link flowTodo                   Todo
hi def link flowRuleName               Function
hi def link flowTemplateName           Type
hi def link flowEveryWord              Keyword
hi def link flowFunctionName           Function
hi def link flowConstantName           Constant
hi def link flowType                   Type
hi def link flowField                  Identifier
hi def link flowProperty               Identifier
hi def link flowCall                   Function
hi def link flowFunction               Function
hi def link flowAction                 Statement
hi def link flowVerdict                Exception
hi def link flowNumberError            Error
hi def link flowNumber                 Number
hi def link flowFloat                  Float
hi def link flowSize                   Number
hi def link flowDuration               Number
hi def link flowIP                     Constant
hi def link flowOperator               Operator
hi def link flowString                 String
hi def link flowTripleString           String
hi def link flowEscape                 SpecialChar
hi def link flowBadEscape              Error
hi def link flowInterpolationDelimiter Delimiter
hi def link flowRegex                  String
hi def link flowRegexDelimiter         Delimiter
hi def link flowRegexEscape            SpecialChar
hi def link flowBrace                  Delimiter
hi def link flowTestWord               Keyword

let b:current_syntax = 'flow'
let &cpo = s:cpo_save
unlet s:cpo_save
